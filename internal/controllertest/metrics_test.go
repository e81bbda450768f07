package controllertest

import (
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// metricValue returns the value of the series of a metric family whose labels include want.
func metricValue(g Gomega, name string, want map[string]string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestMetricsCountRequestsAndPhases(t *testing.T) {
	g := NewWithT(t)
	before403 := metricValue(g, "taskdownload_api_requests_total", map[string]string{"code": "403"})
	beforeReady := metricValue(g, "taskdownload_api_requests_total", map[string]string{"code": "200"})

	td, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{fakepixxel.Fail(403, "forbidden", "no"), readyURL(task)}
	})
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonForbidden))
	g.Expect(metricValue(g, "taskdownload_api_requests_total", map[string]string{"code": "403"})).
		To(Equal(max(before403, 0) + 1))

	other, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	})
	waitFor(t, other, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	g.Expect(metricValue(g, "taskdownload_api_requests_total", map[string]string{"code": "200"})).
		To(BeNumerically(">=", max(beforeReady, 0)+1))
	g.Expect(metricValue(g, "taskdownload_api_request_duration_seconds", nil)).To(BeNumerically(">", 0))
	g.Eventually(func(g Gomega) {
		g.Expect(metricValue(g, "taskdownload_objects", map[string]string{"phase": "Ready"})).To(BeNumerically(">=", 1))
		g.Expect(metricValue(g, "taskdownload_objects", map[string]string{"phase": "Failed"})).To(BeNumerically(">=", 1),
			"the 403 stalls: phase Failed")
	}).Should(Succeed())
}
