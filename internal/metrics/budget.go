package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixxel-space/taskdownload-operator/internal/budget"
)

// keyLabel labels per-key series by budget.KeyID (a SHA-256 prefix of the key), never by the key.
const keyLabel = "key"

var (
	keyRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "taskdownload_api_key_rate",
		Help: "Calls per second currently allowed with each API key, as learned from the platform's answers.",
	}, []string{keyLabel})
	keyRateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_api_key_rate_limited_total",
		Help: "Answers 429 Too Many Requests from the platform, by API key.",
	}, []string{keyLabel})
	keyBreakerOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "taskdownload_api_key_breaker_open",
		Help: "1 while the platform refuses an API key (401/403) and only one probe per --max-poll-interval is made with it.",
	}, []string{keyLabel})
	keyDeferred = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "taskdownload_api_calls_deferred_total",
		Help: "Calls not made and retried later, by API key and reason: paused (a Retry-After runs), " +
			"refused (the key's breaker is open), budget (the key's next turn is further away than a worker waits).",
	}, []string{keyLabel, "reason"})
)

// KeyMetrics reports a budget.Budget's state in the metrics above.
type KeyMetrics struct{}

var _ budget.Metrics = KeyMetrics{}

// RateChanged implements budget.Metrics.
func (KeyMetrics) RateChanged(key string, r float64) { keyRate.WithLabelValues(key).Set(r) }

// RateLimited implements budget.Metrics.
func (KeyMetrics) RateLimited(key string) { keyRateLimited.WithLabelValues(key).Inc() }

// BreakerChanged implements budget.Metrics.
func (KeyMetrics) BreakerChanged(key string, open bool) {
	v := 0.0
	if open {
		v = 1
	}
	keyBreakerOpen.WithLabelValues(key).Set(v)
}

// Deferred implements budget.Metrics.
func (KeyMetrics) Deferred(key, reason string) { keyDeferred.WithLabelValues(key, reason).Inc() }

// Forget implements budget.Metrics.
func (KeyMetrics) Forget(key string) {
	keyRate.DeleteLabelValues(key)
	keyRateLimited.DeleteLabelValues(key)
	keyBreakerOpen.DeleteLabelValues(key)
	keyDeferred.DeletePartialMatch(prometheus.Labels{keyLabel: key})
}
