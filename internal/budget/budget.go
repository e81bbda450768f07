// Package budget shares the platform's rate limit among the calls made with one API key. Each (API URL,
// key) pair has its own token bucket, whose rate is learned from the platform's answers: it starts
// modestly and grows fast while calls succeed (slow start), halves on a 429 and grows back additively
// (AIMD), never above a ceiling. A Retry-After pauses every call with that key, and a key the platform
// refuses (401, 403) is probed once per probe interval instead of being tried by every object using it.
//
// Keys are held and reported only as a SHA-256 prefix, never as themselves.
package budget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

const (
	// DefaultInitialRate is where a new key's rate starts: low enough that a platform limiting keys to a
	// few calls per second answers only a handful of 429s before the budget has learned its limit.
	DefaultInitialRate = 10
	// DefaultMaxWait is the longest a call waits for its turn while holding the caller (a reconcile
	// worker); a later turn is handed back as a rate-limited error carrying the delay.
	DefaultMaxWait = time.Second
	// DefaultMaxRate is the ceiling of a key's rate (calls/s) when Options.MaxRate is not set; the
	// manager sets it from --api-qps.
	DefaultMaxRate = 20
	// DefaultProbeInterval is how often a key whose breaker is open is tried again, when
	// Options.ProbeInterval is not set; the manager sets it from --max-poll-interval.
	DefaultProbeInterval = 5 * time.Minute
	// DefaultIdleTimeout is how long an unused key's state is kept (at least three probe intervals).
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxWaiters is the most callers that may wait for one key at once, so that one busy key
	// cannot hold every reconcile worker while other keys' objects wait for one.
	DefaultMaxWaiters = 32
)

// Deferral reasons, as reported to Metrics.
const (
	// DeferredPaused is a call held back by a Retry-After the platform gave to another call.
	DeferredPaused = "paused"
	// DeferredRefused is a call not made because the platform refuses the key (401/403).
	DeferredRefused = "refused"
	// DeferredBudget is a call whose turn in the key's budget is further away than a caller may wait.
	DeferredBudget = "budget"
)

// Metrics receives what the budget does, per key (identified by KeyID). Implementations must be
// safe for concurrent use and fast: they are called with the budget's lock held.
type Metrics interface {
	// RateChanged reports the key's current rate, in calls per second.
	RateChanged(keyID string, callsPerSecond float64)
	// RateLimited counts a 429 answer.
	RateLimited(keyID string)
	// BreakerChanged reports whether calls with the key are stopped because the platform refused it.
	BreakerChanged(keyID string, open bool)
	// Deferred counts a call returned without being made, by reason (DeferredPaused and so on).
	Deferred(keyID, reason string)
	// Forget drops the key's series: it has not been used for the idle timeout.
	Forget(keyID string)
}

// noMetrics is the Metrics of a budget told none.
type noMetrics struct{}

func (noMetrics) RateChanged(string, float64) {}
func (noMetrics) RateLimited(string)          {}
func (noMetrics) BreakerChanged(string, bool) {}
func (noMetrics) Deferred(string, string)     {}
func (noMetrics) Forget(string)               {}

// Options configures a Budget. Zero values take the defaults.
type Options struct {
	// MaxRate is the most calls per second made with one key (--api-qps); the learned rate never
	// exceeds it.
	MaxRate float64
	// MaxBurst is the most calls made at once with one key (--api-burst). Once the platform has
	// limited a key, its bucket holds at most one second of its learned rate.
	MaxBurst int
	// InitialRate is a new key's rate; default DefaultInitialRate (or MaxRate, if lower).
	InitialRate float64
	// MaxWait and MaxWaiters bound how long and how many callers wait for one key's turn; beyond them
	// a call is deferred (see Admit).
	MaxWait    time.Duration
	MaxWaiters int
	// ProbeInterval is how often one call probes a key the platform refused (--max-poll-interval).
	ProbeInterval time.Duration
	// IdleTimeout is how long an unused key is remembered; default 10 minutes, and at least three
	// probe intervals so that a refused key is not forgotten between its probes.
	IdleTimeout time.Duration
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Metrics, if set, is told what the budget does.
	Metrics Metrics
}

// Budget holds one token bucket per (API URL, key). It is safe for concurrent use.
type Budget struct {
	opts      Options
	mu        sync.Mutex
	keys      map[string]*entry
	lastSweep time.Time
}

// New returns a budget.
func New(o Options) *Budget {
	if o.MaxRate <= 0 {
		o.MaxRate = DefaultMaxRate
	}
	if o.MaxBurst < 1 {
		o.MaxBurst = 1
	}
	if o.InitialRate <= 0 {
		o.InitialRate = DefaultInitialRate
	}
	o.InitialRate = min(o.InitialRate, o.MaxRate)
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxWaiters < 1 {
		o.MaxWaiters = DefaultMaxWaiters
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	o.IdleTimeout = max(o.IdleTimeout, 3*o.ProbeInterval)
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	return &Budget{opts: o, keys: map[string]*entry{}}
}

var _ pixxel.Budget = (*Budget)(nil)

// KeyID identifies an API key in metrics without revealing it: the first 12 hex digits of its SHA-256.
// `printf %s "$KEY" | sha256sum | cut -c1-12` gives the same.
func KeyID(apiKey string) string { return keyID(sha256.Sum256([]byte(apiKey))) }

// keyID is KeyID of the key whose SHA-256 is sum.
func keyID(sum [sha256.Size]byte) string { return hex.EncodeToString(sum[:6]) }

// Admit returns once a call with apiKey to apiURL may be made, and a function to report the call's
// outcome (the error the client returns, nil on success), which must be called once.
//
// It returns an error instead, without a call being made, in three cases. While the platform refuses
// the key (401/403), the same *pixxel.Error, except for one probe per probe interval. While a
// Retry-After given to any call with the key runs, the 429 *pixxel.Error with RetryAfter set to the time
// left. When the key's next turn is further away than MaxWait, or MaxWaiters callers already wait, a
// 429 *pixxel.Error whose RetryAfter is a turn reserved for the caller: callers do not hold a worker
// for long, and turns handed out this way are spread at the key's rate.
func (b *Budget) Admit(ctx context.Context, apiURL, apiKey string) (func(error), error) {
	for {
		b.mu.Lock()
		now := b.opts.Clock.Now()
		b.sweepLocked(now)
		e := b.entryLocked(apiURL, apiKey, now)
		if v, ok := secretVersionOf(ctx); ok && e.breaker.secretSeen(v) {
			b.opts.Metrics.BreakerChanged(e.id, false)
		}
		if e.trial.running == nil {
			return b.admitLocked(ctx, e, now)
		}
		// A new key's first call is under way: wait for its answer, then try again.
		if err := b.awaitTrialLocked(ctx, e); err != nil {
			return nil, err
		}
	}
}

// admitLocked admits a call with e's key, or returns why not; it unlocks b.mu.
func (b *Budget) admitLocked(ctx context.Context, e *entry, now time.Time) (func(error), error) {
	probe, refused := e.breaker.admit(now)
	if refused != nil {
		b.opts.Metrics.Deferred(e.id, DeferredRefused)
		b.mu.Unlock()
		return nil, refused
	}
	t := ticket{epoch: e.aimd.epoch, trial: e.trial.start(), probe: probe}
	if err := b.pausedLocked(e, now); err != nil {
		e.release(t)
		b.mu.Unlock()
		return nil, err
	}
	r, wait := e.aimd.reserve(now)
	if e.turns.mustDefer(wait, b.opts.MaxWait, b.opts.MaxWaiters) {
		r.CancelAt(now)
		e.release(t)
		after := e.turns.later(now, wait, e.aimd.current)
		b.opts.Metrics.Deferred(e.id, DeferredBudget)
		b.mu.Unlock()
		return nil, spreadError(after)
	}
	if wait > 0 {
		e.turns.waiting++
	}
	b.mu.Unlock()

	if wait > 0 {
		if err := b.waitTurn(ctx, e, t, wait); err != nil {
			return nil, err
		}
	}
	var once sync.Once
	return func(err error) { once.Do(func() { b.observe(e, t, err) }) }, nil
}

// Len returns how many keys the budget remembers.
func (b *Budget) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}
