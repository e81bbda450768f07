// Package metrics defines the operator's Prometheus metrics, served on the manager's metrics endpoint.
package metrics

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

var (
	// APIRequests counts platform API calls by HTTP code ("none" when no answer came) and outcome
	// (pending, ready, failed, error).
	APIRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_api_requests_total",
		Help: "Calls to the platform's task download endpoint, by HTTP status code and outcome.",
	}, []string{"code", "outcome"})

	// APIRequestDuration observes how long platform API calls take.
	APIRequestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "taskdownload_api_request_duration_seconds",
		Help:    "Latency of calls to the platform's task download endpoint.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	})

	// EventsDropped counts Kubernetes events not written, by reason: queue_full (more events at once
	// than the recorder's queue holds), rejected (the API server refused the event) and
	// retries_exhausted (the API server could not be reached).
	EventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_events_dropped_total",
		Help: "Kubernetes events the operator did not write, by reason.",
	}, []string{"reason"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(APIRequests, APIRequestDuration, EventsDropped)
}

// Requester is the platform API call being instrumented.
type Requester interface {
	RequestDownload(ctx context.Context, apiKey string, task pixxel.Task) (*pixxel.Download, error)
}

// Instrument wraps a Requester so that every call is counted and timed.
func Instrument(next Requester) Requester { return instrumented{next} }

type instrumented struct{ next Requester }

func (i instrumented) RequestDownload(ctx context.Context, apiKey string, task pixxel.Task) (*pixxel.Download, error) {
	start := time.Now()
	d, err := i.next.RequestDownload(ctx, apiKey, task)
	APIRequestDuration.Observe(time.Since(start).Seconds())
	code, outcome := "200", "error"
	var apiErr *pixxel.Error
	switch {
	case errors.As(err, &apiErr):
		code = strconv.Itoa(apiErr.StatusCode)
	case err != nil:
		var invalid *pixxel.InvalidResponseError
		var tooLarge *pixxel.BodyTooLargeError
		if !errors.As(err, &invalid) && !errors.As(err, &tooLarge) {
			code = "none"
		}
	default:
		switch d.State() {
		case pixxel.StateReady:
			outcome = "ready"
		case pixxel.StateFailed:
			outcome = "failed"
		default:
			outcome = "pending"
		}
	}
	APIRequests.WithLabelValues(code, outcome).Inc()
	return d, err
}

// objectsCollector reports TaskDownloads by phase and each published URL's expiry, read from the
// manager's cache at scrape time, so no series outlives its object.
type objectsCollector struct {
	reader          client.Reader
	byPhase, expiry *prometheus.Desc
}

// RegisterObjectCollector registers the per-phase and per-object expiry metrics, computed from reader
// (the manager's cached client) on every scrape.
func RegisterObjectCollector(reader client.Reader) error {
	c := &objectsCollector{
		reader: reader,
		byPhase: prometheus.NewDesc("taskdownload_objects",
			"TaskDownloads by phase.", []string{"phase"}, nil),
		expiry: prometheus.NewDesc("taskdownload_url_expiration_timestamp_seconds",
			"When each TaskDownload's published signed URL expires, in seconds since the epoch.",
			[]string{"namespace", "name"}, nil),
	}
	err := ctrlmetrics.Registry.Register(c)
	if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		return nil
	}
	return err
}

func (c *objectsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byPhase
	ch <- c.expiry
}

func (c *objectsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list downloadsv1alpha1.TaskDownloadList
	if err := c.reader.List(ctx, &list); err != nil {
		// Before the cache has started (or on a standby replica) there is nothing to report; an error
		// here would fail the whole scrape.
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
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue,
				float64(td.Status.ExpiresAt.Unix()), td.Namespace, td.Name)
		}
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.byPhase, prometheus.GaugeValue, float64(n), string(phase))
	}
}
