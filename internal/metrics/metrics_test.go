package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/metrics"
)

func TestTransportCountsWhatThePlatformAnswered(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/limited" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	c := &http.Client{Transport: metrics.InstrumentTransport(http.DefaultTransport)}

	ok, limited, none := counter("200"), counter("429"), counter("none")
	timed := histogramCount(g)
	for _, path := range []string{"/", "/", "/limited"} {
		resp, err := c.Get(srv.URL + path)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
	}
	_, err := c.Get("http://127.0.0.1:1/") // nothing listens there
	g.Expect(err).To(HaveOccurred())

	g.Expect(counter("200") - ok).To(Equal(2.0))
	g.Expect(counter("429") - limited).To(Equal(1.0))
	g.Expect(counter("none")-none).To(Equal(1.0), "no answer is counted too")
	g.Expect(histogramCount(g) - timed).To(Equal(uint64(4)))
}

func counter(code string) float64 {
	return testutil.ToFloat64(metrics.APIRequests.WithLabelValues(code))
}

func histogramCount(g Gomega) uint64 {
	ch := make(chan prometheus.Metric, 1)
	metrics.APIRequestDuration.Collect(ch)
	var m dto.Metric
	g.Expect((<-ch).Write(&m)).To(Succeed())
	return m.GetHistogram().GetSampleCount()
}

func TestObjectMetricsComeFromTheLeaderOnly(t *testing.T) {
	g := NewWithT(t)
	expires := metav1.NewTime(time.Unix(1_900_000_000, 0))
	ready := &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "scene-1"},
		Status: downloadsv1alpha1.TaskDownloadStatus{
			Phase: downloadsv1alpha1.PhaseReady, ExpiresAt: &expires,
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "URLIssued"}},
		},
	}
	pending := &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "scene-2"},
		Spec:       downloadsv1alpha1.TaskDownloadSpec{Suspend: true},
		Status: downloadsv1alpha1.TaskDownloadStatus{
			Conditions: []metav1.Condition{
				{Type: "Ready", Status: metav1.ConditionUnknown, Reason: "Pending"},
				{Type: "Reconciling", Status: metav1.ConditionTrue, Reason: "Pending"},
			},
		},
	}
	reader := fake.NewClientBuilder().WithScheme(manager.NewScheme()).
		WithObjects(ready, pending).WithStatusSubresource(ready, pending).Build()
	elected := make(chan struct{})
	c := metrics.NewObjectCollector(reader, elected)

	g.Expect(testutil.CollectAndCount(c)).To(BeZero(), "a standby reports nothing, though its cache is full")

	close(elected)
	want := `
# HELP taskdownload_objects TaskDownloads by phase.
# TYPE taskdownload_objects gauge
taskdownload_objects{phase="Failed"} 0
taskdownload_objects{phase="Pending"} 1
taskdownload_objects{phase="Ready"} 1
# HELP taskdownload_status_condition Each TaskDownload's status conditions: 1 for the condition's current status, 0 for the other.
# TYPE taskdownload_status_condition gauge
taskdownload_status_condition{name="scene-1",namespace="team-a",status="False",type="Ready"} 0
taskdownload_status_condition{name="scene-1",namespace="team-a",status="True",type="Ready"} 1
taskdownload_status_condition{name="scene-2",namespace="team-a",status="False",type="Ready"} 0
taskdownload_status_condition{name="scene-2",namespace="team-a",status="False",type="Reconciling"} 0
taskdownload_status_condition{name="scene-2",namespace="team-a",status="True",type="Ready"} 0
taskdownload_status_condition{name="scene-2",namespace="team-a",status="True",type="Reconciling"} 1
taskdownload_status_condition{name="scene-2",namespace="team-a",status="Unknown",type="Ready"} 1
# HELP taskdownload_suspended 1 for each TaskDownload with spec.suspend true (no series for the others).
# TYPE taskdownload_suspended gauge
taskdownload_suspended{name="scene-2",namespace="team-a"} 1
# HELP taskdownload_url_expiration_timestamp_seconds When each TaskDownload's published signed URL expires, in seconds since the epoch.
# TYPE taskdownload_url_expiration_timestamp_seconds gauge
taskdownload_url_expiration_timestamp_seconds{name="scene-1",namespace="team-a"} 1.9e+09
`
	g.Expect(testutil.CollectAndCompare(c, strings.NewReader(want))).To(Succeed())
}
