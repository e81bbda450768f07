package metrics

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// objectLabels name a TaskDownload in the per-object metrics.
var objectLabels = []string{"namespace", "name"}

var (
	objectsByPhase = prometheus.NewDesc("taskdownload_objects",
		"TaskDownloads by phase.", []string{"phase"}, nil)
	urlExpiry = prometheus.NewDesc("taskdownload_url_expiration_timestamp_seconds",
		"When each TaskDownload's published signed URL expires, in seconds since the epoch.",
		objectLabels, nil)
	statusCondition = prometheus.NewDesc("taskdownload_status_condition",
		"Each TaskDownload's status conditions: 1 for the condition's current status, 0 for the other.",
		append(slices.Clone(objectLabels), "type", "status"), nil)
	// suspended lets alerts leave suspended objects alone, as Flux's gotk_suspend_status does.
	suspended = prometheus.NewDesc("taskdownload_suspended",
		"1 for each TaskDownload with spec.suspend true (no series for the others).",
		objectLabels, nil)
)

// objectsCollector reports TaskDownloads read from the manager's cache at scrape time, so that no
// series outlives its object. Only the leader reports: a standby's caches are filled before it is
// elected, and two replicas reporting the same objects would double every sum.
type objectsCollector struct {
	reader  client.Reader
	elected <-chan struct{}
}

// NewObjectCollector returns the collector of the per-phase, per-object expiry, condition and suspension
// metrics, reading from reader (the manager's cached client) once elected is closed.
func NewObjectCollector(reader client.Reader, elected <-chan struct{}) prometheus.Collector {
	return &objectsCollector{reader: reader, elected: elected}
}

// RegisterObjectCollector registers NewObjectCollector's collector on controller-runtime's registry.
// In a process with several managers (tests), the first one's is kept.
func RegisterObjectCollector(reader client.Reader, elected <-chan struct{}) error {
	err := ctrlmetrics.Registry.Register(NewObjectCollector(reader, elected))
	if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		return nil
	}
	return err
}

func (c *objectsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- objectsByPhase
	ch <- urlExpiry
	ch <- statusCondition
	ch <- suspended
}

func (c *objectsCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list downloadsv1alpha1.TaskDownloadList
	if err := c.reader.List(ctx, &list); err != nil {
		// An error here would fail the whole scrape, the manager's own metrics included.
		return
	}
	counts := map[downloadsv1alpha1.Phase]int{
		downloadsv1alpha1.PhasePending: 0, downloadsv1alpha1.PhaseReady: 0, downloadsv1alpha1.PhaseFailed: 0,
	}
	for i := range list.Items {
		td := &list.Items[i]
		phase := td.Status.Phase
		if phase == "" {
			phase = downloadsv1alpha1.PhasePending
		}
		counts[phase]++
		if td.Status.ExpiresAt != nil {
			ch <- prometheus.MustNewConstMetric(urlExpiry, prometheus.GaugeValue,
				float64(td.Status.ExpiresAt.Unix()), td.Namespace, td.Name)
		}
		for _, cond := range td.Status.Conditions {
			collectCondition(ch, td, cond)
		}
		if td.Spec.Suspend {
			ch <- prometheus.MustNewConstMetric(suspended, prometheus.GaugeValue, 1, td.Namespace, td.Name)
		}
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(objectsByPhase, prometheus.GaugeValue, float64(n), string(phase))
	}
}

// collectCondition reports a condition as external-secrets reports externalsecret_status_condition:
// a True and a False series, 1 on the current status, so that alerts can match either value; an
// Unknown status reports both as 0 and an Unknown series as 1.
func collectCondition(ch chan<- prometheus.Metric, td *downloadsv1alpha1.TaskDownload, cond metav1.Condition) {
	statuses := []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse}
	if cond.Status != metav1.ConditionTrue && cond.Status != metav1.ConditionFalse {
		statuses = append(statuses, metav1.ConditionUnknown)
	}
	for _, s := range statuses {
		v := 0.0
		if cond.Status == s {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(statusCondition, prometheus.GaugeValue, v,
			td.Namespace, td.Name, cond.Type, string(s))
	}
}
