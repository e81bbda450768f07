package deploytest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// TestEveryKustomizationBuilds runs `kustomize build` on every folder under config/ that has a
// kustomization (components through an overlay of config/default), and keeps other tools' objects
// (a Flux Kustomization, say) out of files kustomize would take for its own.
func TestEveryKustomizationBuilds(t *testing.T) {
	root := filepath.Join(envtestutil.RepoRoot(), "config")
	var dirs, components []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k map[string]any
		if err := yaml.Unmarshal(data, &k); err != nil {
			return err
		}
		if api, _ := k["apiVersion"].(string); api != "" && !strings.HasPrefix(api, "kustomize.config.k8s.io/") {
			t.Errorf("%s is a %s %v, not a kustomization: rename it", path, api, k["kind"])
		}
		rel, _ := filepath.Rel(envtestutil.RepoRoot(), filepath.Dir(path))
		if k["kind"] == "Component" {
			components = append(components, rel)
			rel = overlay(t, nil, rel)
		}
		dirs = append(dirs, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Expect(dirs).To(ContainElements("config/default", "config/base", "config/flux"))
	// The optional parts are Components, which an overlay turns on without editing config/default.
	NewWithT(t).Expect(components).To(ConsistOf("config/prometheus", "config/grafana", "config/network-policy",
		"config/components/scheduling-gates", "config/components/injection", "config/components/least-privilege"))
	for _, dir := range dirs {
		out, stderr, err := run(t, "kustomize", "build", dir)
		if err != nil {
			t.Errorf("kustomize build %s: %v\n%s", dir, err, stderr)
			continue
		}
		if len(decode(t, out)) == 0 {
			t.Errorf("kustomize build %s renders nothing", dir)
		}
	}
}

// overlay copies config/ into a temporary directory, turns on the optional parts of
// config/default/kustomization.yaml a user would uncomment (each given by its comment), adds
// component if set, and returns the copy's config/default.
func overlay(t *testing.T, uncomment []string, component string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "config")
	src := filepath.Join(envtestutil.RepoRoot(), "config")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dst, "default", "kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := string(data)
	for _, line := range uncomment {
		if !strings.Contains(k, "#"+line+"\n") {
			t.Fatalf("config/default/kustomization.yaml has no line %q to uncomment", "#"+line)
		}
		k = strings.Replace(k, "#"+line+"\n", line+"\n", 1)
	}
	if component != "" {
		comp, _ := filepath.Rel(filepath.Join(envtestutil.RepoRoot(), "config"), filepath.Join(envtestutil.RepoRoot(), component))
		k += "\ncomponents:\n- ../" + filepath.ToSlash(comp) + "\n"
	}
	if err := os.WriteFile(path, []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dst, "default")
}

// TestKustomizeOptionalParts: the parts config/default lists as comments work once uncommented, and
// names still point at each other after namePrefix.
func TestKustomizeOptionalParts(t *testing.T) {
	g := NewWithT(t)
	plain := render(t, "kustomize", "build", "config/default")
	objs := render(t, "kustomize", "build", overlay(t, []string{"- ../prometheus", "- ../grafana", "- ../network-policy",
		"components:", "- ../components/scheduling-gates"}, ""))

	// Scheduling gates: the flag and access to pods come together, and only with the component.
	args := func(objs []*unstructured.Unstructured) []string {
		return stringSlice(managerContainer(t, find(objs, "Deployment", nil)), "args")
	}
	g.Expect(args(plain)).NotTo(ContainElement("--enable-scheduling-gates"))
	g.Expect(args(objs)).To(ContainElement("--enable-scheduling-gates"))
	for _, o := range plain {
		if _, ok := o.Object["rules"]; !ok {
			continue
		}
		g.Expect(o.Object["rules"]).NotTo(ContainElement(HaveKeyWithValue("resources", ContainElement("pods"))),
			"%s %s grants access to pods without the scheduling-gates component", o.GetKind(), o.GetName())
	}
	gates := find(objs, "ClusterRole", named("scheduling-gates-role"))
	g.Expect(gates).NotTo(BeNil())
	g.Expect(gates.Object["rules"]).To(ContainElement(HaveKeyWithValue("verbs", ConsistOf("get", "list", "watch", "patch"))))
	sa := find(objs, "ServiceAccount", named("controller-manager"))
	gatesBinding := find(objs, "ClusterRoleBinding", named("scheduling-gates-rolebinding"))
	g.Expect(gatesBinding.Object["roleRef"]).To(HaveKeyWithValue("name", gates.GetName()))
	g.Expect(gatesBinding.Object["subjects"]).To(ConsistOf(map[string]any{
		"kind": "ServiceAccount", "name": sa.GetName(), "namespace": sa.GetNamespace()}))

	// Prometheus: the ServiceMonitor's token belongs to a ServiceAccount bound to metrics-reader.
	sm := find(objs, "ServiceMonitor", nil)
	g.Expect(sm).NotTo(BeNil())
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	secretName, _, _ := unstructured.NestedString(endpoints[0].(map[string]any), "authorization", "credentials", "name")
	secret := find(objs, "Secret", func(o *unstructured.Unstructured) bool { return o.GetName() == secretName })
	g.Expect(secret).NotTo(BeNil(), "the ServiceMonitor names Secret %q, which is not rendered", secretName)
	scraper := find(objs, "ServiceAccount", named("metrics-scraper"))
	g.Expect(secret.GetAnnotations()).To(HaveKeyWithValue("kubernetes.io/service-account.name", scraper.GetName()))
	binding := find(objs, "ClusterRoleBinding", named("metrics-reader-rolebinding"))
	g.Expect(binding.Object["roleRef"]).To(HaveKeyWithValue("name", find(objs, "ClusterRole", named("metrics-reader")).GetName()))
	g.Expect(binding.Object["subjects"]).To(ConsistOf(HaveKeyWithValue("name", scraper.GetName())))
	g.Expect(kinds(objs)).To(HaveKey("PrometheusRule"))
	g.Expect(kinds(objs)).To(HaveKey("NetworkPolicy"))
	g.Expect(find(objs, "ConfigMap", named("dashboard"))).NotTo(BeNil())
}

// TestKustomizeComponentsFromAnOverlay: a user's overlay of config/base turns the optional Components
// on without editing config/, and renders what uncommenting them in config/default renders.
func TestKustomizeComponentsFromAnOverlay(t *testing.T) {
	g := NewWithT(t)
	components := []string{"../prometheus", "../grafana", "../network-policy", "../components/injection"}
	uncommented := make([]string, 0, len(components)+1)
	uncommented = append(uncommented, "components:")
	for _, c := range components {
		uncommented = append(uncommented, "- "+c)
	}
	want := render(t, "kustomize", "build", overlay(t, uncommented, ""))

	dir := filepath.Join(t.TempDir(), "my-overlay")
	g.Expect(os.CopyFS(filepath.Join(filepath.Dir(dir), "config"),
		os.DirFS(filepath.Join(envtestutil.RepoRoot(), "config")))).To(Succeed())
	g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
		"namespace: taskdownload-operator-system\nnamePrefix: taskdownload-operator-\n" +
		"resources:\n- ../config/base\ncomponents:\n"
	for _, c := range components {
		k += "- ../config/" + strings.TrimPrefix(c, "../") + "\n"
	}
	g.Expect(os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600)).To(Succeed())
	got := render(t, "kustomize", "build", dir)

	key := func(o *unstructured.Unstructured) string {
		return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	byKey := map[string]map[string]any{}
	for _, o := range want {
		byKey[key(o)] = o.Object
	}
	g.Expect(got).To(HaveLen(len(want)))
	for _, o := range got {
		g.Expect(byKey).To(HaveKeyWithValue(key(o), o.Object), "%s differs from config/default's", key(o))
	}
	g.Expect(kinds(got)).To(HaveKey("ServiceMonitor"))
}

// TestInstallYAMLLabelsClusterObjects: the README's uninstall-but-keep-the-CRD command selects every
// cluster-wide RBAC object of install.yaml by label.
func TestInstallYAMLLabelsClusterObjects(t *testing.T) {
	g := NewWithT(t)
	for _, o := range render(t, "kustomize", "build", "config/default") {
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/name", "taskdownload-operator"),
			"%s %s", o.GetKind(), o.GetName())
	}
}

// TestGeneratedRoleGrantsNoPods: access to pods comes only with scheduling gates, so no RBAC marker
// may put it into the always-installed manager role.
func TestGeneratedRoleGrantsNoPods(t *testing.T) {
	NewWithT(t).Expect(generatedManagerRules(t)).NotTo(ContainElement(
		HaveKeyWithValue("resources", ContainElement("pods"))))
}

// podSpecs returns the pod templates of workload objects.
func podSpecs(o *unstructured.Unstructured) []map[string]any {
	paths := map[string][]string{
		"Pod": {"spec"}, "Deployment": {"spec", "template", "spec"}, "StatefulSet": {"spec", "template", "spec"},
		"DaemonSet": {"spec", "template", "spec"}, "ReplicaSet": {"spec", "template", "spec"},
		"Job": {"spec", "template", "spec"}, "CronJob": {"spec", "jobTemplate", "spec", "template", "spec"},
	}
	path, ok := paths[o.GetKind()]
	if !ok {
		return nil
	}
	spec, found, _ := unstructured.NestedMap(o.Object, path...)
	if !found {
		return nil
	}
	return []map[string]any{spec}
}

// ownImage reports whether image is the operator's, whose user is numeric 65532.
func ownImage(image string) bool {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo == "ghcr.io/pixxel-space/taskdownload-operator" || repo == "controller"
}

// TestSamplePodsRunOnAKubelet: a kubelet refuses to start a runAsNonRoot container whose image runs
// as root or as a user name, unless runAsUser says who to run as.
func TestSamplePodsRunOnAKubelet(t *testing.T) {
	g := NewWithT(t)
	samples := render(t, "kustomize", "build", "config/samples")
	pods := 0
	for _, o := range samples {
		for _, spec := range podSpecs(o) {
			pods++
			podSC, _ := spec["securityContext"].(map[string]any)
			for _, key := range []string{"initContainers", "containers"} {
				list, _ := spec[key].([]any)
				for _, c := range list {
					c := c.(map[string]any)
					sc, _ := c["securityContext"].(map[string]any)
					pick := func(field string) any {
						if v, ok := sc[field]; ok {
							return v
						}
						return podSC[field]
					}
					if pick("runAsNonRoot") != true {
						continue
					}
					user, hasUser := pick("runAsUser").(int64)
					if f, ok := pick("runAsUser").(float64); ok {
						user, hasUser = int64(f), true
					}
					g.Expect(hasUser && user != 0 || ownImage(c["image"].(string))).To(BeTrue(),
						"%s %s: container %s (image %s) is runAsNonRoot without runAsUser", o.GetKind(), o.GetName(), c["name"], c["image"])
				}
			}
		}
	}
	g.Expect(pods).To(BeNumerically(">=", 2))

	job := find(samples, "Job", nil)
	g.Expect(job).NotTo(BeNil())
	sc, _, _ := unstructured.NestedMap(job.Object, "spec", "template", "spec", "securityContext")
	g.Expect(sc).To(HaveKeyWithValue("runAsUser", BeNumerically("==", 65532)))
	g.Expect(sc).To(HaveKeyWithValue("fsGroup", BeNumerically("==", 65532)))
}

// TestSamplesApply creates the samples for real on an API server with the CRD installed.
func TestSamplesApply(t *testing.T) {
	g := NewWithT(t)
	env, cfg, err := envtestutil.Start(slowStart)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c := &cluster{env: env}
	c.admin, err = client.New(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	c.createNamespace(t, "samples")
	samples := render(t, "kustomize", "build", "config/samples")
	g.Expect(kinds(samples)).To(HaveKeyWithValue("TaskDownload", BeNumerically(">=", 3)))
	for _, s := range samples {
		s.SetNamespace("samples")
		g.Expect(c.admin.Create(context.Background(), s)).To(Succeed(), "%s %s", s.GetKind(), s.GetName())
	}
}
