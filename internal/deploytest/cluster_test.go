package deploytest

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/schedulinggate"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
)

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
		binPath, buildErr = managerproc.Build(dir)
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
	slowStart(env)
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

// slowStart gives the control plane minutes rather than envtest's default 20 seconds to start: on a
// loaded CI machine kube-apiserver takes longer, and a start timeout fails the test for nothing.
func slowStart(env *envtest.Environment) {
	env.ControlPlaneStartTimeout = 3 * time.Minute
	env.ControlPlaneStopTimeout = time.Minute
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

// createTaskDownloads makes the API key Secret and one TaskDownload per target kind, to-configmap and
// to-secret, in ns.
func (c *cluster) createTaskDownloads(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(c.admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pixxel-api-key"},
		StringData: map[string]string{"api-key": apiKey},
	})).To(Succeed())
	for _, k := range target.Kinds() {
		name := "to-" + strings.ToLower(string(k.TargetKind()))
		td := &downloadsv1alpha1.TaskDownload{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: downloadsv1alpha1.TaskDownloadSpec{
				WorkflowID: "wf", JobID: "job", TaskID: downloadsv1alpha1.ResourceID(ns + "-" + name),
				APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel-api-key"},
				Target:          &downloadsv1alpha1.Target{Kind: k.TargetKind(), Name: name},
			},
		}
		g.Expect(c.admin.Create(ctx, td)).To(Succeed())
	}
}

// createGatedPod makes a pod held by the scheduling gate of the TaskDownload to-configmap.
func (c *cluster) createGatedPod(t *testing.T, ns string) {
	t.Helper()
	NewWithT(t).Expect(c.admin.Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gated"},
		Spec: corev1.PodSpec{
			SchedulingGates: []corev1.PodSchedulingGate{{Name: schedulinggate.GateName("to-configmap")}},
			Containers:      []corev1.Container{{Name: "main", Image: "busybox:1.37"}},
		},
	})).To(Succeed())
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
