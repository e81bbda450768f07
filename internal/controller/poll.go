package controller

import (
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

// pollBackoff hands out per-object delays that start at the poll interval and double, with ±10 %
// jitter so that objects created together spread out, up to the maximum poll interval. It is shared by
// polling a pending package and by retrying transient failures; it forgets an object once its URL is
// published, its failure is terminal, or it is deleted.
type pollBackoff struct {
	limiter workqueue.TypedRateLimiter[types.NamespacedName]
	max     time.Duration
}

func newPollBackoff(initial, maxDelay time.Duration) *pollBackoff {
	return &pollBackoff{
		limiter: workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](initial, maxDelay),
		max:     maxDelay,
	}
}

// next returns the delay before the object's next attempt and moves its backoff one step on.
func (p *pollBackoff) next(key types.NamespacedName) time.Duration {
	d := p.limiter.When(key)
	jittered := time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
	return min(jittered, p.max)
}

// forget resets the object's backoff.
func (p *pollBackoff) forget(key types.NamespacedName) { p.limiter.Forget(key) }
