package deploytest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/pixxel-space/taskdownload-operator/internal/target"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

var namespacedArgs = []string{"--set", "rbac.namespaced=true", "--set", "operator.watchNamespaces={team-a,team-b}"}

// monitoringArgs turns on everything the chart can add around metrics.
var monitoringArgs = []string{
	"--set", "prometheus.serviceMonitor.enabled=true", "--set", "prometheus.prometheusRule.enabled=true",
	"--set", "grafanaDashboard.enabled=true", "--set", "networkPolicy.enabled=true",
}

func TestChartLintStrict(t *testing.T) {
	for name, args := range map[string][]string{
		"defaults":        nil,
		"namespaced":      namespacedArgs,
		"monitoring":      monitoringArgs,
		"gates, 3 pods":   {"--set", "operator.schedulingGates=true", "--set", "manager.replicas=3"},
		"insecure, no LE": {"--set", "metrics.secure=false", "--set", "leaderElection.enabled=false"},
	} {
		t.Run(name, func(t *testing.T) {
			out, stderr, err := run(t, "helm", append([]string{"lint", "--strict", "dist/chart"}, args...)...)
			NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s\n%s", out, stderr)
		})
	}
}

// TestChartRejectsBadValues: values.schema.json stops values the manager would crash on at helm
// install/template time, with a message naming the value.
func TestChartRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"operator.pollInterval=10", "pollInterval"},
		{"operator.maxPollInterval=5 minutes", "maxPollInterval"},
		{"operator.apiQPS=fast", "apiQPS"},
		{"operator.apiQPS=0", "apiQPS"},
		{"operator.kubeAPIQPS=-1", "kubeAPIQPS"},
		{"prometheus.prometheusRule.apiErrorRatio=1.5", "apiErrorRatio"},
		{"operator.apiBurst=0", "apiBurst"},
		{"operator.logLevel=verbose", "logLevel"},
		{"operator.apiURL=api.pixxel.space", "apiURL"},
		{"operator.watchNamespaces={Team_A}", "watchNamespaces"},
		{"manager.image.pullPolicy=Sometimes", "pullPolicy"},
		{"operator.pollIntervall=10s", "pollIntervall"},
		{"webhook.enabled=true", "webhook"},
		{"certManager.enabled=true", "certManager"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			g := NewWithT(t)
			_, stderr, err := run(t, "helm", templateArgs("td", "--set", tc.set)...)
			g.Expect(err).To(HaveOccurred(), "helm accepted %s", tc.set)
			g.Expect(stderr).To(ContainSubstring("values don't meet the specifications of the schema"))
			g.Expect(stderr).To(ContainSubstring(tc.want))
		})
	}
	for _, ok := range []string{"operator.pollInterval=1m30s", "operator.apiQPS=2.5", "operator.apiQPS=3",
		"operator.logLevel=debug", "prometheus.prometheusRule.apiErrorRatio=0.05"} {
		_, stderr, err := run(t, "helm", templateArgs("td", "--set", ok)...)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s: %s", ok, stderr)
	}
}

func TestChartNamespacedNeedsWatchNamespaces(t *testing.T) {
	g := NewWithT(t)
	_, stderr, err := run(t, "helm", templateArgs("td", "--set", "rbac.namespaced=true")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("rbac.namespaced=true grants the manager Roles only in the namespaces it watches: set operator.watchNamespaces"))
}

// TestChartNamespacedRBAC: namespaced mode grants the manager's rules in every watched namespace and
// nowhere else, and leader election in the release namespace.
func TestChartNamespacedRBAC(t *testing.T) {
	g := NewWithT(t)
	objs := helmTemplate(t, namespacedArgs...)
	want := generatedManagerRules(t)
	roles := map[string]any{}
	for _, r := range all(objs, "Role") {
		if named("manager-role")(r) {
			roles[r.GetNamespace()] = r.Object["rules"]
		}
	}
	g.Expect(roles).To(Equal(map[string]any{"team-a": want, "team-b": want}))
	for _, ns := range []string{"team-a", "team-b"} {
		b := find(objs, "RoleBinding", func(o *unstructured.Unstructured) bool {
			return o.GetNamespace() == ns && named("manager-rolebinding")(o)
		})
		g.Expect(b).NotTo(BeNil(), "no RoleBinding in %s", ns)
		g.Expect(b.Object["subjects"]).To(ConsistOf(HaveKeyWithValue("namespace", releaseNamespace)))
	}
	for _, cr := range all(objs, "ClusterRole") {
		g.Expect(cr.GetName()).NotTo(HaveSuffix("manager-role"), "a ClusterRole for the manager in namespaced mode")
	}
	le := find(objs, "Role", named("leader-election-role"))
	g.Expect(le).NotTo(BeNil())
	g.Expect(le.GetNamespace()).To(Equal(releaseNamespace))
	g.Expect(stringSlice(managerContainer(t, find(objs, "Deployment", nil)), "args")).
		To(ContainElement("--watch-namespaces=team-a,team-b"))
}

// TestChartSchedulingGates: the gate controller's flag and its access to pods come together, and
// only when asked for.
func TestChartSchedulingGates(t *testing.T) {
	grantsPods := func(o *unstructured.Unstructured) bool {
		rules, _ := o.Object["rules"].([]any)
		for _, r := range rules {
			if res, ok := r.(map[string]any)["resources"].([]any); ok && len(res) > 0 && res[0] == "pods" {
				return true
			}
		}
		return false
	}
	podRoles := func(objs []*unstructured.Unstructured) map[string]bool {
		out := map[string]bool{}
		for _, o := range objs {
			if (o.GetKind() == "Role" || o.GetKind() == "ClusterRole") && grantsPods(o) {
				out[o.GetKind()+"/"+o.GetNamespace()] = true
			}
		}
		return out
	}
	args := func(objs []*unstructured.Unstructured) []string {
		return stringSlice(managerContainer(t, find(objs, "Deployment", nil)), "args")
	}
	g := NewWithT(t)

	off := helmTemplate(t)
	g.Expect(args(off)).NotTo(ContainElement("--enable-scheduling-gates"))
	g.Expect(podRoles(off)).To(BeEmpty())

	on := helmTemplate(t, "--set", "operator.schedulingGates=true")
	g.Expect(args(on)).To(ContainElement("--enable-scheduling-gates"))
	g.Expect(podRoles(on)).To(Equal(map[string]bool{"ClusterRole/": true}))
	g.Expect(find(on, "ClusterRoleBinding", named("scheduling-gates-rolebinding"))).NotTo(BeNil())

	onNamespaced := helmTemplate(t, append(namespacedArgs, "--set", "operator.schedulingGates=true")...)
	g.Expect(podRoles(onNamespaced)).To(Equal(map[string]bool{"Role/team-a": true, "Role/team-b": true}))
}

// TestChartSelectors: two releases in one namespace select only their own pods.
func TestChartSelectors(t *testing.T) {
	g := NewWithT(t)
	selectors := map[string]any{}
	for _, release := range []string{"td", "other"} {
		objs := render(t, "helm", templateArgs(release, "--namespace", releaseNamespace)...)
		deploy := find(objs, "Deployment", nil)
		sel, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "selector", "matchLabels")
		g.Expect(sel).To(HaveKeyWithValue("app.kubernetes.io/instance", release))
		podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
		for k, v := range sel {
			g.Expect(podLabels).To(HaveKeyWithValue(k, v))
		}
		svcSel, _, _ := unstructured.NestedStringMap(find(objs, "Service", nil).Object, "spec", "selector")
		g.Expect(svcSel).To(Equal(sel))
		selectors[release] = sel
	}
	g.Expect(selectors["td"]).NotTo(Equal(selectors["other"]))
}

func TestChartPodDisruptionBudget(t *testing.T) {
	g := NewWithT(t)
	g.Expect(kinds(helmTemplate(t))).NotTo(HaveKey("PodDisruptionBudget"))
	objs := helmTemplate(t, "--set", "manager.replicas=2")
	pdb := find(objs, "PodDisruptionBudget", nil)
	g.Expect(pdb).NotTo(BeNil())
	g.Expect(pdb.Object["spec"]).To(HaveKeyWithValue("minAvailable", BeNumerically("==", 1)))
	sel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
	want, _, _ := unstructured.NestedStringMap(find(objs, "Deployment", nil).Object, "spec", "selector", "matchLabels")
	g.Expect(sel).To(Equal(want))
}

func TestChartExtraEnvAndVolumes(t *testing.T) {
	g := NewWithT(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(values, []byte(`
manager:
  extraEnv:
  - name: HTTPS_PROXY
    value: http://proxy.internal:3128
  - name: NO_PROXY
    value: .svc,.cluster.local,10.0.0.0/8
  extraVolumes:
  - name: proxy-ca
    configMap:
      name: proxy-ca
  extraVolumeMounts:
  - name: proxy-ca
    mountPath: /etc/proxy/ca.crt
    subPath: ca.crt
    readOnly: true
`), 0o600)).To(Succeed())
	deploy := find(helmTemplate(t, "-f", values), "Deployment", nil)
	c := managerContainer(t, deploy)
	g.Expect(c["env"]).To(ContainElements(
		HaveKeyWithValue("name", "POD_NAMESPACE"),
		map[string]any{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"},
		map[string]any{"name": "NO_PROXY", "value": ".svc,.cluster.local,10.0.0.0/8"}))
	g.Expect(c["volumeMounts"]).To(ContainElement(HaveKeyWithValue("mountPath", "/etc/proxy/ca.crt")))
	vols, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	g.Expect(vols).To(ContainElement(HaveKeyWithValue("name", "proxy-ca")))
}

// TestChartMatchesGeneratedManifests fails when the chart's copies of the CRD and the manager's
// RBAC rules fall behind config/ (regenerated by `make manifests`).
func TestChartMatchesGeneratedManifests(t *testing.T) {
	g := NewWithT(t)
	chart := helmTemplate(t)
	kust := render(t, "kustomize", "build", "config/default")
	chartCRD := find(chart, "CustomResourceDefinition", nil)
	g.Expect(chartCRD).NotTo(BeNil())
	g.Expect(reflect.DeepEqual(chartCRD.Object["spec"], find(kust, "CustomResourceDefinition", nil).Object["spec"])).
		To(BeTrue(), "dist/chart's CRD differs from config/crd: run make manifests")
	role := find(chart, "ClusterRole", named("manager-role"))
	g.Expect(role).NotTo(BeNil())
	g.Expect(role.Object["rules"]).To(Equal(generatedManagerRules(t)),
		"the chart's taskdownload-operator.managerRules (_helpers.tpl) differ from config/rbac/role.yaml")
}

// generatedManagerRules reads the rules controller-gen wrote from the controller's RBAC markers.
func generatedManagerRules(t *testing.T) any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role map[string]any
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	return role["rules"]
}

func TestRenderedManagersAreHardened(t *testing.T) {
	for _, inst := range installations() {
		t.Run(inst.name, func(t *testing.T) { checkHardened(t, find(inst.objects(t), "Deployment", nil)) })
	}
}

// checkHardened asserts the manager runs non-root, read-only, without capabilities, with seccomp,
// resources and probes, and sets POD_NAMESPACE for its leader election Lease.
func checkHardened(t *testing.T, deploy *unstructured.Unstructured) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(deploy).NotTo(BeNil())
	pod, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	g.Expect(pod).To(HaveKeyWithValue("securityContext", HaveKeyWithValue("runAsNonRoot", true)))
	g.Expect(pod["securityContext"]).To(HaveKeyWithValue("seccompProfile", HaveKeyWithValue("type", "RuntimeDefault")))
	c := managerContainer(t, deploy)
	g.Expect(c["securityContext"]).To(HaveKeyWithValue("readOnlyRootFilesystem", true))
	g.Expect(c["securityContext"]).To(HaveKeyWithValue("allowPrivilegeEscalation", false))
	g.Expect(c["securityContext"]).To(HaveKeyWithValue("capabilities", HaveKeyWithValue("drop", ContainElement("ALL"))))
	g.Expect(c["resources"]).To(HaveKey("limits"))
	g.Expect(c["resources"]).To(HaveKey("requests"))
	g.Expect(c).To(HaveKey("livenessProbe"))
	g.Expect(c).To(HaveKey("readinessProbe"))
	g.Expect(c["env"]).To(ContainElement(map[string]any{"name": "POD_NAMESPACE",
		"valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.namespace"}}}))
}

// TestLeastPrivilegePolicy: the chart installs the least-privilege ValidatingAdmissionPolicy by
// default, the same policy as config/components/least-privilege (which internal/tenancytest checks on
// a real API server) but for the ServiceAccount of the release; the component names the ServiceAccount
// config/default installs, and its binding follows the name prefix.
func TestLeastPrivilegePolicy(t *testing.T) {
	g := NewWithT(t)
	chart := helmTemplate(t)
	kust := render(t, "kustomize", "build", overlay(t, nil, "config/components/least-privilege"))
	username := func(objs []*unstructured.Unstructured) string {
		sa := find(objs, "ServiceAccount", named("controller-manager"))
		g.Expect(sa).NotTo(BeNil())
		return "system:serviceaccount:" + sa.GetNamespace() + ":" + sa.GetName()
	}
	specs := make([]map[string]any, 0, 2)
	for _, objs := range [][]*unstructured.Unstructured{chart, kust} {
		policy := find(objs, "ValidatingAdmissionPolicy", named("least-privilege"))
		g.Expect(policy).NotTo(BeNil())
		binding := find(objs, "ValidatingAdmissionPolicyBinding", named("least-privilege"))
		g.Expect(binding).NotTo(BeNil())
		g.Expect(binding.Object["spec"]).To(HaveKeyWithValue("policyName", policy.GetName()))
		g.Expect(binding.Object["spec"]).To(HaveKeyWithValue("validationActions", ConsistOf("Deny")))
		conditions, _, _ := unstructured.NestedSlice(policy.Object, "spec", "matchConditions")
		g.Expect(conditions).To(HaveLen(1))
		g.Expect(conditions[0]).To(HaveKeyWithValue("expression", ContainSubstring("'"+username(objs)+"'")),
			"the policy names the manager's own ServiceAccount")
		spec, _, _ := unstructured.NestedMap(policy.Object, "spec")
		delete(spec, "matchConditions")
		specs = append(specs, spec)
	}
	g.Expect(specs[0]).To(Equal(specs[1]),
		"dist/chart/templates/rbac/least-privilege-policy.yaml differs from config/components/least-privilege")
	// Every kind of object the operator publishes to is one the policy confines: a new target.Kind
	// fails here until the policy names its resource.
	var confined []any
	rules, _, _ := unstructured.NestedSlice(specs[0], "matchConstraints", "resourceRules")
	for _, rule := range rules {
		confined = append(confined, rule.(map[string]any)["resources"].([]any)...)
	}
	for _, k := range target.Kinds() {
		g.Expect(confined).To(ContainElement(strings.ToLower(string(k.TargetKind()))+"s"),
			"the least-privilege policy does not confine the operator's writes of %ss", k.TargetKind())
	}
	g.Expect(kinds(helmTemplate(t, "--set", "admissionPolicy.enabled=false"))).NotTo(HaveKey("ValidatingAdmissionPolicy"))
}
