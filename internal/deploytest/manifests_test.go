package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

var k8s client.Client

func TestMain(m *testing.M) {
	dir, err := envtestutil.AssetsDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s, err = client.New(cfg, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// tool returns a pinned tool from bin/, installed by the Makefile.
func tool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(envtestutil.RepoRoot(), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found at %s: run `make %s` (make test does)", name, p, name)
	}
	return p
}

func render(t *testing.T, name string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = envtestutil.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return decode(t, out)
}

func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding rendered manifests: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// dryRunApply creates the namespaces for real (namespaced objects need them) and applies everything
// else with server-side apply in dry-run mode: schema, RBAC rule and reference errors all surface.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured, namespace string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ensureNamespace(t, namespace)
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ensureNamespace(t, o.GetName())
			continue
		}
		if o.GetNamespace() != "" {
			ensureNamespace(t, o.GetNamespace())
		}
		obj := o.DeepCopy()
		err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
			client.DryRunAll, client.ForceOwnership, client.FieldOwner("deploytest"))
		g.Expect(err).NotTo(HaveOccurred(), "%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	}
}

func ensureNamespace(t *testing.T, name string) {
	err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetKind()]++
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind string, match func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (match == nil || match(o)) {
			return o
		}
	}
	return nil
}

func TestKustomizeDefaultApplies(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "kustomize", "build", "config/default")
	g.Expect(kinds(objs)).To(HaveKeyWithValue("CustomResourceDefinition", 1))
	g.Expect(kinds(objs)).To(HaveKeyWithValue("Deployment", 1))
	dryRunApply(t, objs, "taskdownload-operator-system")

	deploy := find(objs, "Deployment", nil)
	checkHardened(t, deploy)
	args, _, _ := unstructured.NestedStringSlice(firstContainer(t, deploy), "args")
	g.Expect(args).To(ContainElement("--leader-elect"))
}

func TestKustomizeSamplesApply(t *testing.T) {
	g := NewWithT(t)
	// The CRD must exist for the samples to be validated against it.
	crds := render(t, "kustomize", "build", "config/crd")
	for _, crd := range crds {
		err := k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(crd),
			client.ForceOwnership, client.FieldOwner("deploytest"))
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Eventually(func() error {
		return k8s.List(context.Background(), &unstructured.UnstructuredList{Object: map[string]any{
			"apiVersion": "downloads.pixxel.space/v1alpha1", "kind": "TaskDownloadList",
		}})
	}).Should(Succeed())
	samples := render(t, "kustomize", "build", "config/samples")
	for _, s := range samples {
		s.SetNamespace("samples")
	}
	g.Expect(kinds(samples)).To(HaveKeyWithValue("TaskDownload", 3))
	dryRunApply(t, samples, "samples")
}

func TestHelmChartApplies(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"namespaced RBAC, watched namespaces, plain metrics", []string{
			"--set", "rbac.namespaced=true", "--set", "operator.watchNamespaces={team-a,team-b}",
			"--set", "metrics.secure=false", "--set", "leaderElection.enabled=false",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			args := append([]string{"template", "td", "dist/chart", "--namespace", "helm-" + fmt.Sprint(len(tc.set))}, tc.set...)
			objs := render(t, "helm", args...)
			g.Expect(kinds(objs)).To(HaveKeyWithValue("Deployment", 1))
			dryRunApply(t, objs, "helm-"+fmt.Sprint(len(tc.set)))
			checkHardened(t, find(objs, "Deployment", nil))
		})
	}
}

// TestHelmChartMatchesGeneratedManifests fails when the chart's copies of the CRD and the manager's
// RBAC rules fall behind config/ (regenerated by `make manifests`).
func TestHelmChartMatchesGeneratedManifests(t *testing.T) {
	g := NewWithT(t)
	chart := render(t, "helm", "template", "td", "dist/chart")
	kust := render(t, "kustomize", "build", "config/default")

	chartCRD := find(chart, "CustomResourceDefinition", nil)
	kustCRD := find(kust, "CustomResourceDefinition", nil)
	g.Expect(chartCRD).NotTo(BeNil())
	g.Expect(reflect.DeepEqual(chartCRD.Object["spec"], kustCRD.Object["spec"])).To(BeTrue(),
		"dist/chart's CRD differs from config/crd: copy config/crd/bases into dist/chart/templates/crd")

	isManager := func(o *unstructured.Unstructured) bool {
		return filepath.Base(o.GetName()) != "" && (o.GetName() == "td-taskdownload-operator-manager-role" ||
			o.GetName() == "taskdownload-operator-manager-role")
	}
	chartRole, kustRole := find(chart, "ClusterRole", isManager), find(kust, "ClusterRole", isManager)
	g.Expect(chartRole).NotTo(BeNil())
	g.Expect(kustRole).NotTo(BeNil())
	g.Expect(chartRole.Object["rules"]).To(Equal(kustRole.Object["rules"]),
		"dist/chart's manager role differs from config/rbac/role.yaml")
}

func firstContainer(t *testing.T, deploy *unstructured.Unstructured) map[string]any {
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Fatalf("Deployment has no containers")
	}
	return containers[0].(map[string]any)
}

// checkHardened asserts the manager runs non-root, read-only, without capabilities, with seccomp,
// resources and probes.
func checkHardened(t *testing.T, deploy *unstructured.Unstructured) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(deploy).NotTo(BeNil())
	pod, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	g.Expect(pod).To(HaveKeyWithValue("securityContext", HaveKeyWithValue("runAsNonRoot", true)))
	g.Expect(pod["securityContext"]).To(HaveKeyWithValue("seccompProfile", HaveKeyWithValue("type", "RuntimeDefault")))
	c := firstContainer(t, deploy)
	g.Expect(c["securityContext"]).To(HaveKeyWithValue("readOnlyRootFilesystem", true))
	g.Expect(c["securityContext"]).To(HaveKeyWithValue("allowPrivilegeEscalation", false))
	g.Expect(c["securityContext"]).To(HaveKeyWithValue("capabilities", HaveKeyWithValue("drop", ContainElement("ALL"))))
	g.Expect(c["resources"]).To(HaveKey("limits"))
	g.Expect(c["resources"]).To(HaveKey("requests"))
	g.Expect(c).To(HaveKey("livenessProbe"))
	g.Expect(c).To(HaveKey("readinessProbe"))
}
