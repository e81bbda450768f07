package deploytest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
)

// managerProcess is the manager binary running as a rendered Deployment's container.
type managerProcess struct {
	*managerproc.Process
	probeAddr, metricsAddr string
}

// startManager runs bin with exactly the rendered container's arguments and environment, replacing
// only the listen addresses (free loopback ports), --api-url (the fake) and adding --kubeconfig: a
// kubeconfig that impersonates the Deployment's ServiceAccount, so that only the installed RBAC
// authorizes the manager.
func (c *cluster) startManager(t *testing.T, bin string, deploy *unstructured.Unstructured, apiURL string) *managerProcess {
	t.Helper()
	g := NewWithT(t)
	dir := t.TempDir()
	mc := managerContainer(t, deploy)
	g.Expect(stringSlice(mc, "command")).To(Equal([]string{"/manager"}))

	m := &managerProcess{}
	rendered := stringSlice(mc, "args")
	args := make([]string, 0, len(rendered)+1)
	for _, a := range rendered {
		name, value, _ := strings.Cut(a, "=")
		switch name {
		case "--metrics-bind-address":
			if value != "0" {
				m.metricsAddr = freeAddr(t)
				a = name + "=" + m.metricsAddr
			}
		case "--health-probe-bind-address":
			m.probeAddr = freeAddr(t)
			a = name + "=" + m.probeAddr
		case "--pprof-bind-address":
			a = name + "=" + freeAddr(t)
		case "--api-url":
			a = name + "=" + apiURL
		case "--kubeconfig":
			t.Fatalf("the rendered Deployment sets %s", a)
		}
		args = append(args, a)
	}
	g.Expect(args).To(ContainElement("--leader-elect"), "leader election must be on")
	g.Expect(m.probeAddr).NotTo(BeEmpty())

	sa, _, _ := unstructured.NestedString(deploy.Object, "spec", "template", "spec", "serviceAccountName")
	g.Expect(sa).NotTo(BeEmpty())
	kubeconfig := c.kubeconfig(t, dir, fmt.Sprintf("system:serviceaccount:%s:%s", deploy.GetNamespace(), sa))
	args = append(args, "--kubeconfig="+kubeconfig)

	var err error
	m.Process, err = managerproc.Start(bin, args, containerEnv(t, deploy, mc), filepath.Join(dir, "manager.log"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Log(m.tail())
		}
	})
	return m
}

// containerEnv resolves the container's environment as the kubelet would: literal values, the
// downward API's metadata.namespace and resource limits.
func containerEnv(t *testing.T, deploy *unstructured.Unstructured, mc map[string]any) []string {
	t.Helper()
	var env []string
	items, _ := mc["env"].([]any)
	for _, it := range items {
		e := it.(map[string]any)
		name, _ := e["name"].(string)
		if v, ok := e["value"].(string); ok {
			env = append(env, name+"="+v)
			continue
		}
		if field, ok, _ := unstructured.NestedString(e, "valueFrom", "fieldRef", "fieldPath"); ok {
			if field != "metadata.namespace" {
				t.Fatalf("env %s: fieldRef %s is not resolved by this test", name, field)
			}
			env = append(env, name+"="+deploy.GetNamespace())
			continue
		}
		if res, ok, _ := unstructured.NestedString(e, "valueFrom", "resourceFieldRef", "resource"); ok {
			kind, resName, _ := strings.Cut(res, ".")
			q, found, _ := unstructured.NestedString(mc, "resources", kind, resName)
			if !found {
				t.Fatalf("env %s: container has no %s", name, res)
			}
			quantity := resource.MustParse(q)
			env = append(env, fmt.Sprintf("%s=%d", name, quantity.Value()))
			continue
		}
		t.Fatalf("env %s: value source not resolved by this test: %v", name, e)
	}
	return env
}

// kubeconfig writes envtest's admin credentials, with `as: user` when user is set: the API server
// then authorizes every request as user alone.
func (c *cluster) kubeconfig(t *testing.T, dir, user string) string {
	t.Helper()
	g := NewWithT(t)
	admin, err := c.env.AddUser(envtest.User{Name: "deploytest-admin", Groups: []string{"system:masters"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	data, err := admin.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	cfg, err := clientcmd.Load(data)
	g.Expect(err).NotTo(HaveOccurred())
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
	}
	path := filepath.Join(dir, "kubeconfig")
	g.Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// tail describes the manager's last log lines for a failed assertion.
func (m *managerProcess) tail() string { return "manager log (last lines):\n" + m.Tail(40) }

// stop ends the manager as the kubelet does (SIGTERM) and expects a clean exit.
func (m *managerProcess) stop(t *testing.T) {
	t.Helper()
	_ = m.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.Exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the manager did not stop within 30s of SIGTERM\n%s", m.tail())
	}
	NewWithT(t).Expect(m.Cmd.ProcessState.ExitCode()).To(BeZero(), m.tail)
}

// get requests path on addr (https with a bearer token when token is set) and returns the status code.
func (m *managerProcess) get(path, addr, token string) (int, error) {
	scheme := "http"
	if token != "" {
		scheme = "https"
	}
	req, err := http.NewRequest(http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The manager serves a self-signed certificate, as in a cluster without metrics.tls.secretName.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test server
	}}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// checkMetricsAuth scrapes the secure metrics endpoint as a ServiceAccount bound to the installed
// metrics-reader ClusterRole (as the README says to bind a scraper), and as one that is not.
func checkMetricsAuth(t *testing.T, c *cluster, m *managerProcess) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	c.createNamespace(t, "monitoring")
	clientset, err := kubernetes.NewForConfig(c.env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	token := func(name string) string {
		g.Expect(c.admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: name}})).To(Succeed())
		tr, err := clientset.CoreV1().ServiceAccounts("monitoring").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	var readers rbacv1.ClusterRoleList
	g.Expect(c.admin.List(ctx, &readers)).To(Succeed())
	reader := ""
	for _, r := range readers.Items {
		if named("metrics-reader")(&unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": r.Name}}}) {
			reader = r.Name
		}
	}
	g.Expect(reader).NotTo(BeEmpty(), "no metrics-reader ClusterRole installed")
	g.Expect(c.admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "monitoring", Name: "prometheus"}},
	})).To(Succeed())
	allowed, denied := token("prometheus"), token("nobody")
	g.Eventually(func() (int, error) { return m.get("/metrics", m.metricsAddr, allowed) }).
		WithTimeout(30*time.Second).Should(Equal(http.StatusOK), m.tail)
	g.Expect(m.get("/metrics", m.metricsAddr, denied)).To(Equal(http.StatusForbidden))
}
