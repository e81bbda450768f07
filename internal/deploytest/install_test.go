package deploytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// The namespaces where users create TaskDownloads: the namespaced rendering watches the first two.
var teamNamespaces = []string{"team-a", "team-b", "team-c"}

const apiKey = "deploytest-api-key"

// installation is one way users install the operator.
type installation struct {
	name    string
	objects func(t *testing.T) []*unstructured.Unstructured
	// watched are the namespaces whose TaskDownloads must go Ready; the others must be left alone.
	watched []string
	// before, if set, runs on the empty cluster before the objects are applied.
	before func(t *testing.T, c *cluster)
}

func installations() []installation {
	return []installation{
		{"install.yaml", buildInstaller, teamNamespaces, nil},
		{"chart defaults", func(t *testing.T) []*unstructured.Unstructured { return helmTemplate(t) }, teamNamespaces, checkHelmInstallNotes},
		{"chart namespaced", func(t *testing.T) []*unstructured.Unstructured {
			return helmTemplate(t, "--set", "rbac.namespaced=true", "--set", "operator.watchNamespaces={team-a,team-b}")
		}, []string{"team-a", "team-b"}, nil},
	}
}

// buildInstaller writes dist/install.yaml as `make build-installer` does (kustomize build
// config/default), into a temporary directory rather than the working tree, and reads it back.
func buildInstaller(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, stderr, err := run(t, "kustomize", "build", "config/default")
	if err != nil {
		t.Fatalf("kustomize build config/default: %v\n%s", err, stderr)
	}
	path := filepath.Join(t.TempDir(), "install.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, data)
}

// TestInstallationsRunWithTheirOwnIdentity installs each rendering on a fresh API server and runs the
// manager as its ServiceAccount: TaskDownloads with ConfigMap and Secret targets go Ready in every
// watched namespace, unwatched namespaces are left alone, and nothing is forbidden.
func TestInstallationsRunWithTheirOwnIdentity(t *testing.T) {
	bin := managerBinary(t)
	for _, inst := range installations() {
		t.Run(inst.name, func(t *testing.T) {
			objs := inst.objects(t)
			c := startCluster(t)
			for _, ns := range teamNamespaces {
				c.createNamespace(t, ns)
			}
			if inst.before != nil {
				inst.before(t, c)
			}
			c.apply(t, objs)

			deploy := find(objs, "Deployment", nil)
			NewWithT(t).Expect(deploy).NotTo(BeNil())
			fake := fakepixxel.New()
			t.Cleanup(fake.Close)
			fake.RequireAPIKey(apiKey)
			fake.SetDefaultPending(0)
			m := c.startManager(t, bin, deploy, fake.URL)

			for _, ns := range teamNamespaces {
				c.createTaskDownloads(t, ns)
			}
			checkInstallation(t, c, m, deploy, fake, inst.watched)
		})
	}
}

func checkInstallation(t *testing.T, c *cluster, m *managerProcess, deploy *unstructured.Unstructured,
	fake *fakepixxel.Server, watched []string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Eventually(func(g Gomega) {
		for _, ns := range watched {
			for _, td := range c.taskDownloads(g, ns) {
				g.Expect(apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionReady)).
					To(BeTrue(), "%s/%s: %v", ns, td.Name, td.Status.Conditions)
			}
			cm := &corev1.ConfigMap{}
			g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-configmap"}, cm)).To(Succeed())
			g.Expect(cm.Data["SIGNED_URL"]).To(HavePrefix("https://"))
			sec := &corev1.Secret{}
			g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-secret"}, sec)).To(Succeed())
			g.Expect(string(sec.Data["SIGNED_URL"])).To(HavePrefix("https://"))
		}
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), m.tail)

	for _, ns := range teamNamespaces {
		if contains(watched, ns) {
			continue
		}
		g.Consistently(func(g Gomega) {
			for _, td := range c.taskDownloads(g, ns) {
				g.Expect(td.Status.Conditions).To(BeEmpty(), "%s/%s in an unwatched namespace", ns, td.Name)
				g.Expect(fake.Calls(fakepixxel.Task{WorkflowID: "wf", JobID: "job", TaskID: ns + "-" + td.Name})).To(BeZero())
			}
			var cms corev1.ConfigMapList
			g.Expect(c.admin.List(ctx, &cms, client.InNamespace(ns), client.HasLabels{"downloads.pixxel.space/taskdownload"})).To(Succeed())
			g.Expect(cms.Items).To(BeEmpty())
		}).WithTimeout(3 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	}

	// Leader election ran in the Deployment's namespace, as the ServiceAccount.
	lease := &coordinationv1.Lease{}
	g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: deploy.GetNamespace(), Name: "taskdownload-operator.pixxel.space"}, lease)).
		To(Succeed(), "the leader election Lease is not in the Deployment's namespace")
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())

	g.Expect(m.get("/readyz", m.probeAddr, "")).To(Equal(200))
	if m.metricsAddr != "" {
		checkMetricsAuth(t, c, m, deploy)
	}
	m.stop(t)
	g.Expect(m.log()).NotTo(MatchRegexp("(?i)forbidden"), "the installed RBAC refused the manager")
}

// checkHelmInstallNotes runs `helm install --dry-run=server` against the empty cluster: helm checks
// the chart's kubeVersion against the real server, and prints NOTES.txt, which must tell a new user
// what to do next.
func checkHelmInstallNotes(t *testing.T, c *cluster) {
	t.Helper()
	g := NewWithT(t)
	kubeconfig := c.kubeconfig(t, t.TempDir(), "")
	out, stderr, err := run(t, "helm", "install", "td", "dist/chart", "--dry-run=server", "--kubeconfig", kubeconfig,
		"--namespace", releaseNamespace, "--set", "manager.image.repository=registry.example/td", "--set", "manager.image.tag=v9")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	_, notes, found := strings.Cut(string(out), "NOTES:")
	g.Expect(found).To(BeTrue(), "helm printed no NOTES")
	g.Expect(notes).To(ContainSubstring("kubectl -n <namespace> create secret generic pixxel-api-key --from-literal=api-key="))
	g.Expect(notes).To(ContainSubstring("kind: TaskDownload"))
	g.Expect(notes).To(ContainSubstring("image: registry.example/td:v9"))
	g.Expect(notes).To(ContainSubstring(`command: ["/fetch"`))
	g.Expect(notes).To(ContainSubstring("rollout status deployment/td-taskdownload-operator-controller-manager"))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// managerBinary builds ./cmd once per test run.
func managerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deploytest-manager-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "manager")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd")
		cmd.Dir = envtestutil.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cluster is a fresh API server with no CRDs and a cluster-admin client.
type cluster struct {
	env   *envtest.Environment
	admin client.Client
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir, err := envtestutil.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := manager.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, admin: admin}
}

func (c *cluster) createNamespace(t *testing.T, name string) {
	t.Helper()
	NewWithT(t).Expect(client.IgnoreAlreadyExists(c.admin.Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))).To(Succeed())
}

// apply creates every rendered object for real with server-side apply: namespaces first (helm
// install --create-namespace makes the release namespace), then CRDs until established, then the rest.
func (c *cluster) apply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	c.createNamespace(t, releaseNamespace)
	ssa := func(o *unstructured.Unstructured) {
		err := c.admin.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.ForceOwnership, client.FieldOwner("deploytest"))
		g.Expect(err).NotTo(HaveOccurred(), "%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ssa(o)
		}
	}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		ssa(o)
		g.Eventually(func(g Gomega) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			g.Expect(c.admin.Get(ctx, client.ObjectKey{Name: o.GetName()}, crd)).To(Succeed())
			established := false
			for _, cond := range crd.Status.Conditions {
				established = established || cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue
			}
			g.Expect(established).To(BeTrue())
		}).WithTimeout(30 * time.Second).Should(Succeed())
	}
	for _, o := range objs {
		if o.GetKind() != "Namespace" && o.GetKind() != "CustomResourceDefinition" {
			ssa(o)
		}
	}
}

// createTaskDownloads makes the API key Secret and two TaskDownloads, publishing to a ConfigMap and
// to a Secret, in ns.
func (c *cluster) createTaskDownloads(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(c.admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pixxel-api-key"},
		StringData: map[string]string{"api-key": apiKey},
	})).To(Succeed())
	for name, target := range map[string]downloadsv1alpha1.TargetKind{
		"to-configmap": downloadsv1alpha1.TargetConfigMap, "to-secret": downloadsv1alpha1.TargetSecret,
	} {
		td := &downloadsv1alpha1.TaskDownload{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: downloadsv1alpha1.TaskDownloadSpec{
				WorkflowID: "wf", JobID: "job", TaskID: downloadsv1alpha1.ResourceID(ns + "-" + name),
				APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel-api-key"},
				Target:          &downloadsv1alpha1.Target{Kind: target, Name: name},
			},
		}
		g.Expect(c.admin.Create(ctx, td)).To(Succeed())
	}
}

func (c *cluster) taskDownloads(g Gomega, ns string) []downloadsv1alpha1.TaskDownload {
	var list downloadsv1alpha1.TaskDownloadList
	g.Expect(c.admin.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(2))
	return list.Items
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
