package controller

import (
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

// failureBackoff hands out per-object delays after transient failures (5xx without Retry-After,
// timeouts, invalid answers): they start at the poll interval and double, with ±10 % jitter so that
// objects failing together spread out, up to the maximum poll interval. It forgets an object once its
// URL is published, its failure needs the user, or it is deleted. Pending polls follow pendingDelay
// instead, which needs no memory.
type failureBackoff struct {
	limiter workqueue.TypedRateLimiter[types.NamespacedName]
	max     time.Duration
}

func newFailureBackoff(initial, maxDelay time.Duration) *failureBackoff {
	return &failureBackoff{
		limiter: workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](initial, maxDelay),
		max:     maxDelay,
	}
}

// next returns the delay before the object's next attempt and moves its backoff one step on.
func (p *failureBackoff) next(key types.NamespacedName) time.Duration {
	d := p.limiter.When(key)
	jittered := time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	return min(jittered, p.max)
}

// forget resets the object's backoff.
func (p *failureBackoff) forget(key types.NamespacedName) { p.limiter.Forget(key) }
