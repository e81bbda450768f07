// Package metrics defines the operator's Prometheus metrics, served on the manager's metrics endpoint:
// platform API calls measured at the HTTP transport, the per-key budget (internal/budget), and
// TaskDownloads read from the cache by the leader.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// APIRequests counts HTTP requests to the platform API by status code ("none" when no answer came:
	// a refused or reset connection, a timeout).
	APIRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_api_requests_total",
		Help: "HTTP requests to the platform API, by status code (none: no answer).",
	}, []string{"code"})

	// APIRequestDuration observes how long platform API requests take until the answer's headers.
	APIRequestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "taskdownload_api_request_duration_seconds",
		Help:    "Latency of HTTP requests to the platform API, until the answer's headers.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	})

	// EventsDropped counts Kubernetes events not written, by reason: queue_full (more events at once
	// than the recorder's queue holds), rejected (the API server refused the event) and
	// retries_exhausted (the API server could not be reached).
	EventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_events_dropped_total",
		Help: "Kubernetes events the operator did not write, by reason.",
	}, []string{"reason"})

	// InjectionAdmissions counts pods the injecting webhook (--enable-injection) admitted, by outcome:
	// injected (it added what the pod's TaskDownloads need), refused (the pod was rejected, with a message
	// saying what to fix) and skipped (nothing to add: an update, or TaskDownloads injected before).
	InjectionAdmissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_injection_admissions_total",
		Help: "Pods the injecting admission webhook handled, by outcome (injected, refused, skipped).",
	}, []string{"outcome"})

	// InjectionBypassed counts pods labelled for injection that were created without the injection
	// marker: the webhook did not see them (its configuration is missing, or the namespaceSelector
	// excludes their namespace).
	InjectionBypassed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "taskdownload_injection_bypassed_pods_total",
		Help: "Pods labelled downloads.pixxel.space/inject=true created without the injecting webhook's changes.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(APIRequests, APIRequestDuration, EventsDropped, InjectionAdmissions, InjectionBypassed,
		keyRate, keyRateLimited, keyBreakerOpen, keyDeferred)
}
