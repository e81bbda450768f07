package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestChartPodAndReleaseValues: the values platform teams expect of a chart (as cert-manager's and
// external-secrets' have) reach the objects.
func TestChartPodAndReleaseValues(t *testing.T) {
	g := NewWithT(t)
	values := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(values, []byte(`
commonLabels:
  team: platform
extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: '{{ .Release.Name }}-extra'
  - |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: {{ .Release.Name }}-extra-string
manager:
  revisionHistoryLimit: 3
  livenessProbe: {initialDelaySeconds: 30, periodSeconds: 15, timeoutSeconds: 2, failureThreshold: 5}
  readinessProbe: {initialDelaySeconds: 1, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2}
  automountServiceAccountToken: false
  hostNetwork: true
operator:
  logFormat: console
leaderElection:
  leaseDuration: 60s
  renewDeadline: 40s
  retryPeriod: 5s
`), 0o600)).To(Succeed())
	objs := helmTemplate(t, "-f", values)
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetName(), "td-extra") {
			g.Expect(o.GetLabels()).To(HaveKeyWithValue("team", "platform"), "%s %s", o.GetKind(), o.GetName())
		}
	}
	g.Expect(find(objs, "ConfigMap", func(o *unstructured.Unstructured) bool { return o.GetName() == "td-extra" })).
		NotTo(BeNil())
	g.Expect(find(objs, "ConfigMap", func(o *unstructured.Unstructured) bool { return o.GetName() == "td-extra-string" })).
		NotTo(BeNil())

	deploy := find(objs, "Deployment", nil)
	g.Expect(deploy.Object["spec"]).To(HaveKeyWithValue("revisionHistoryLimit", BeNumerically("==", 3)))
	pod, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	g.Expect(pod).To(HaveKeyWithValue("automountServiceAccountToken", false))
	g.Expect(pod).To(HaveKeyWithValue("enableServiceLinks", false))
	g.Expect(pod).To(HaveKeyWithValue("hostNetwork", true))
	g.Expect(pod).To(HaveKeyWithValue("dnsPolicy", "ClusterFirstWithHostNet"))
	c := managerContainer(t, deploy)
	g.Expect(c["livenessProbe"]).To(And(HaveKeyWithValue("initialDelaySeconds", BeNumerically("==", 30)),
		HaveKeyWithValue("failureThreshold", BeNumerically("==", 5)), HaveKey("httpGet")))
	g.Expect(c["readinessProbe"]).To(And(HaveKeyWithValue("periodSeconds", BeNumerically("==", 5)),
		HaveKeyWithValue("timeoutSeconds", BeNumerically("==", 2)), HaveKey("httpGet")))
	g.Expect(stringSlice(c, "args")).To(ContainElements("--zap-encoder=console", "--leader-elect",
		"--leader-elect-lease-duration=60s", "--leader-elect-renew-deadline=40s", "--leader-elect-retry-period=5s"))

	defaults := managerContainer(t, find(helmTemplate(t), "Deployment", nil))
	g.Expect(stringSlice(defaults, "args")).To(ContainElement("--zap-encoder=json"))
	defaultPod, _, _ := unstructured.NestedMap(find(helmTemplate(t), "Deployment", nil).Object, "spec", "template", "spec")
	g.Expect(defaultPod).NotTo(HaveKey("hostNetwork"))
	g.Expect(defaultPod).NotTo(HaveKey("dnsPolicy"))
}

// TestChartRefusesReplicasWithoutLeaderElection: two managers without a lease would both reconcile
// every TaskDownload.
func TestChartRefusesReplicasWithoutLeaderElection(t *testing.T) {
	g := NewWithT(t)
	_, stderr, err := run(t, "helm", templateArgs("td", "--set", "leaderElection.enabled=false",
		"--set", "manager.replicas=2")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("/manager/replicas"))
	for _, ok := range [][]string{
		{"--set", "leaderElection.enabled=false", "--set", "manager.replicas=1"},
		{"--set", "manager.replicas=3"},
	} {
		_, stderr, err := run(t, "helm", templateArgs("td", ok...)...)
		g.Expect(err).NotTo(HaveOccurred(), "%v: %s", ok, stderr)
	}
}

// TestChartMonitors: a PodMonitor instead of the ServiceMonitor, relabelings, and a monitor in
// Prometheus' namespace, which needs a token Secret there.
func TestChartMonitors(t *testing.T) {
	g := NewWithT(t)
	relabel := []string{"--set", "prometheus.serviceMonitor.relabelings[0].targetLabel=cluster",
		"--set", "prometheus.serviceMonitor.relabelings[0].replacement=prod",
		"--set", "prometheus.serviceMonitor.metricRelabelings[0].action=drop",
		"--set", "prometheus.serviceMonitor.metricRelabelings[0].regex=go_.*"}

	pm := helmTemplate(t, append([]string{"--set", "prometheus.podMonitor.enabled=true"}, relabel...)...)
	g.Expect(kinds(pm)).NotTo(HaveKey("ServiceMonitor"))
	mon := find(pm, "PodMonitor", nil)
	g.Expect(mon).NotTo(BeNil())
	eps, _, _ := unstructured.NestedSlice(mon.Object, "spec", "podMetricsEndpoints")
	g.Expect(eps).To(HaveLen(1))
	ep := eps[0].(map[string]any)
	g.Expect(ep).To(HaveKeyWithValue("port", "metrics"), "the container port's name")
	g.Expect(ep["relabelings"]).To(ConsistOf(HaveKeyWithValue("targetLabel", "cluster")))
	g.Expect(ep["metricRelabelings"]).To(ConsistOf(HaveKeyWithValue("regex", "go_.*")))
	g.Expect(find(pm, "Secret", named("metrics-scraper-token"))).NotTo(BeNil(), "the scraper identity comes along")

	sm := find(helmTemplate(t, "--set", "prometheus.serviceMonitor.enabled=true",
		"--set", "prometheus.serviceMonitor.namespace=monitoring",
		"--set", "prometheus.serviceMonitor.bearerTokenSecret.name=scraper-token"), "ServiceMonitor", nil)
	g.Expect(sm.GetNamespace()).To(Equal("monitoring"))
	sel, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	g.Expect(sel).To(Equal([]string{releaseNamespace}))

	_, stderr, err := run(t, "helm", templateArgs("td", "--set", "prometheus.serviceMonitor.enabled=true",
		"--set", "prometheus.serviceMonitor.namespace=monitoring")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("Prometheus reads the bearer token from the monitor's namespace"))
	_, stderr, err = run(t, "helm", templateArgs("td", "--set", "prometheus.serviceMonitor.enabled=true",
		"--set", "prometheus.podMonitor.enabled=true")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("choose one"))
}
