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
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
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
	// slowStartGain is how much each successful call adds to the rate (calls/s) during slow start: the
	// rate grows by a factor e every 1/slowStartGain seconds while calls succeed at the rate allowed.
	slowStartGain = 2
	// additiveStep is how much the rate grows per second of successful calls after a 429 (calls/s per
	// second), a fraction of the rate at which the 429 came so that the rate is back in a few seconds,
	// but at least one call/s per second.
	additiveStep = 0.1
	// sweepEvery is how often idle keys are looked for.
	sweepEvery = time.Minute
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

// entry is one key's state.
type entry struct {
	id       string // KeyID, for metrics
	lim      *rate.Limiter
	rate     float64 // calls/s allowed now
	ssthresh float64 // slow start ends here
	peak     float64 // the rate at the last 429: sets the additive step
	// epoch counts rate decreases; a 429 to a call admitted before the last decrease does not halve
	// the rate again (once per window, as TCP does).
	epoch       uint64
	pausedUntil time.Time
	pauseErr    *pixxel.Error
	queueEnd    time.Time // the last deferred turn handed out
	waiters     int
	refused     *pixxel.Error // the 401/403 that opened the breaker, nil when closed
	nextProbe   time.Time
	probing     bool
	// answered is set by the key's first answer; until then trial is closed when the one call
	// allowed ends.
	answered     bool
	trial        chan struct{}
	lastAccepted time.Time // the last 200 answer
	// secrets holds the resourceVersion last seen of each Secret the key was read from, when callers
	// say: a Secret that changes closes the breaker, while two Secrets holding the same key (in two
	// namespaces, say) are simply two sources of one key, not a change.
	secrets  map[string]string
	lastUsed time.Time
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
	return &Budget{opts: o, keys: map[string]*entry{}}
}

var _ pixxel.Budget = (*Budget)(nil)

// KeyID identifies an API key in metrics without revealing it: the first 12 hex digits of its SHA-256.
// `printf %s "$KEY" | sha256sum | cut -c1-12` gives the same.
func KeyID(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:6])
}

type secretVersionKey struct{}

// secretVersion is the Secret a call's key was read from, and the version read.
type secretVersion struct{ secret, resourceVersion string }

// maxSecretsPerKey bounds how many Secrets' versions are remembered for one key: beyond it, a change
// to another Secret holding the key no longer closes its breaker early (the probe still comes).
const maxSecretsPerKey = 1024

// WithSecretVersion tells the budget which Secret (namespace/name) the call's key was read from, and at
// which resourceVersion. When that Secret's version differs from the one seen before with the key, a
// breaker opened by a 401/403 is closed: the user changed the Secret, so the key is tried again at once.
// Keys are told apart by their content alone: the same key read from several Secrets shares one
// budget, and reading it from another Secret is no change.
func WithSecretVersion(ctx context.Context, secret, resourceVersion string) context.Context {
	return context.WithValue(ctx, secretVersionKey{}, secretVersion{secret: secret, resourceVersion: resourceVersion})
}

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
		if v, ok := ctx.Value(secretVersionKey{}).(secretVersion); ok && v.resourceVersion != "" {
			b.secretSeenLocked(e, v)
		}
		if e.trial != nil {
			// A new key's first call is under way: until it is answered, nobody knows whether the
			// platform accepts the key, and a revoked key must not be tried by every object at once.
			// Those who wait for it count against MaxWaiters like those who wait for a turn.
			if e.waiters >= b.opts.MaxWaiters {
				b.deferredLocked(e, DeferredBudget)
				b.mu.Unlock()
				return nil, spreadError(b.opts.MaxWait)
			}
			trial := e.trial
			e.waiters++
			b.mu.Unlock()
			err := b.waitFor(ctx, trial, e)
			b.mu.Lock()
			e.waiters--
			b.mu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}
		return b.admitLocked(ctx, e, now)
	}
}

// secretSeenLocked records the version of a Secret the key was read from, and closes the key's breaker
// when that Secret changed since it was last seen.
func (b *Budget) secretSeenLocked(e *entry, v secretVersion) {
	prev, seen := e.secrets[v.secret]
	if seen && prev == v.resourceVersion {
		return
	}
	if seen {
		b.closeBreakerLocked(e)
	} else if len(e.secrets) >= maxSecretsPerKey {
		return
	}
	if e.secrets == nil {
		e.secrets = map[string]string{}
	}
	e.secrets[v.secret] = v.resourceVersion
}

// admitLocked admits a call with e's key, or returns why not; it unlocks b.mu.
func (b *Budget) admitLocked(ctx context.Context, e *entry, now time.Time) (func(error), error) {
	var t ticket
	if e.refused != nil {
		if e.probing || now.Before(e.nextProbe) {
			b.deferredLocked(e, DeferredRefused)
			b.mu.Unlock()
			return nil, copyError(e.refused)
		}
		e.probing, t.probe = true, true
	}
	if !e.answered {
		e.trial = make(chan struct{})
		t.trial = true
	}
	if err := b.pausedLocked(e, now); err != nil {
		b.releaseLocked(e, t)
		b.mu.Unlock()
		return nil, err
	}

	r := e.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait > b.opts.MaxWait || (wait > 0 && e.waiters >= b.opts.MaxWaiters) {
		r.CancelAt(now)
		b.releaseLocked(e, t)
		turn := now.Add(wait)
		if next := e.queueEnd.Add(time.Duration(float64(time.Second) / e.rate)); next.After(turn) {
			turn = next
		}
		e.queueEnd = turn
		b.deferredLocked(e, DeferredBudget)
		b.mu.Unlock()
		return nil, spreadError(turn.Sub(now))
	}
	t.epoch = e.epoch
	if wait > 0 {
		e.waiters++
	}
	b.mu.Unlock()

	if wait > 0 {
		err := b.sleep(ctx, wait)
		b.mu.Lock()
		e.waiters--
		if err == nil {
			// A 429 that came while this call waited pauses it too.
			err = b.pausedLocked(e, b.opts.Clock.Now())
		}
		if err != nil {
			b.releaseLocked(e, t)
			b.mu.Unlock()
			return nil, err
		}
		b.mu.Unlock()
	}
	var once sync.Once
	return func(err error) { once.Do(func() { b.observe(e, t, err) }) }, nil
}

// ticket is what an admitted call's outcome is learned against.
type ticket struct {
	epoch uint64
	trial bool // the key's first call
	probe bool // the one call made while the breaker is open
}

// releaseLocked gives up a trial or probe whose call is not made, so that another caller makes it.
func (b *Budget) releaseLocked(e *entry, t ticket) {
	if t.trial {
		close(e.trial)
		e.trial = nil
	}
	if t.probe {
		e.probing = false
	}
}

// waitFor waits until done is closed, at most MaxWait.
func (b *Budget) waitFor(ctx context.Context, done <-chan struct{}, e *entry) error {
	t := b.opts.Clock.NewTimer(b.opts.MaxWait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C():
		b.mu.Lock()
		b.deferredLocked(e, DeferredBudget)
		b.mu.Unlock()
		return spreadError(b.opts.MaxWait)
	case <-ctx.Done():
		return fmt.Errorf("waiting for the API key's rate limit: %w", ctx.Err())
	}
}

// spreadError is the error returned for a call deferred to a later turn in its key's budget.
func spreadError(after time.Duration) *DeferredError {
	return &DeferredError{Reason: DeferredBudget, APIError: &pixxel.Error{
		StatusCode: http.StatusTooManyRequests,
		Message:    "calls with this API key are spread out to stay within the platform's rate limit",
		RetryAfter: after,
	}}
}

// DeferredError is a call Admit did not make but put off: while a Retry-After runs for the key
// (Reason DeferredPaused) or until the key's next turn (DeferredBudget). It wraps a 429 *pixxel.Error
// whose RetryAfter is when to call again, so that a caller that knows nothing of the budget waits as
// for a 429; a caller that does can requeue quietly, since nothing about the object changed.
type DeferredError struct {
	APIError *pixxel.Error
	Reason   string
}

func (e *DeferredError) Error() string {
	return "call deferred (" + e.Reason + "): " + e.APIError.Error()
}
func (e *DeferredError) Unwrap() error { return e.APIError }

// Deferred reports whether err is a call the budget put off, and for how long.
func Deferred(err error) (time.Duration, bool) {
	if d, ok := errors.AsType[*DeferredError](err); ok {
		return d.APIError.RetryAfter, true
	}
	return 0, false
}

func (b *Budget) sleep(ctx context.Context, d time.Duration) error {
	t := b.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the API key's rate limit: %w", ctx.Err())
	}
}

// pausedLocked returns the 429 to hand back while a Retry-After runs for the key.
func (b *Budget) pausedLocked(e *entry, now time.Time) error {
	if !now.Before(e.pausedUntil) {
		return nil
	}
	err := copyError(e.pauseErr)
	err.RetryAfter = e.pausedUntil.Sub(now)
	b.deferredLocked(e, DeferredPaused)
	return &DeferredError{APIError: err, Reason: DeferredPaused}
}

// observe learns from a call's outcome.
func (b *Budget) observe(e *entry, t ticket, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Clock.Now()
	// Whatever the outcome, the trial is over: even a failed connection leaves the others to find out
	// for themselves, at the key's rate.
	e.answered = true
	b.releaseLocked(e, t)
	apiErr, isAPIErr := errors.AsType[*pixxel.Error](err)
	switch {
	case err == nil:
		e.lastAccepted = now
		b.closeBreakerLocked(e)
		b.growLocked(e, now)
	case !isAPIErr:
		// No answer, or one that says nothing about the rate limit or the key.
	case apiErr.Kind() == pixxel.KindRateLimited:
		b.rateLimitedLocked(e, t.epoch, apiErr, now)
	case apiErr.Kind() == pixxel.KindUnauthorized || apiErr.Kind() == pixxel.KindForbidden:
		b.refusedLocked(e, apiErr, now)
	case apiErr.Kind() != pixxel.KindServerError:
		// The platform served the call (400, 404 and so on): it was within its limit.
		b.growLocked(e, now)
	}
}

// refusedLocked opens the key's breaker on a 401 or 403, unless the platform accepted the key for
// another call within the probe interval: the API answers 403 when the key may not access one
// workflow, job or task, and one TaskDownload naming another team's task must not stop every other
// TaskDownload using the key. A key that is revoked while in use is stopped once its last success is
// a probe interval old; until then each object retries it at --max-poll-interval, as without a breaker.
func (b *Budget) refusedLocked(e *entry, apiErr *pixxel.Error, now time.Time) {
	if e.refused == nil && !e.lastAccepted.IsZero() && now.Sub(e.lastAccepted) < b.opts.ProbeInterval {
		return
	}
	if e.refused == nil && b.opts.Metrics != nil {
		b.opts.Metrics.BreakerChanged(e.id, true)
	}
	e.refused = copyError(apiErr)
	e.nextProbe = now.Add(b.opts.ProbeInterval)
}

func (b *Budget) rateLimitedLocked(e *entry, epoch uint64, apiErr *pixxel.Error, now time.Time) {
	if b.opts.Metrics != nil {
		b.opts.Metrics.RateLimited(e.id)
	}
	if apiErr.RetryAfter > 0 {
		if until := now.Add(apiErr.RetryAfter); until.After(e.pausedUntil) {
			e.pausedUntil = until
			e.pauseErr = copyError(apiErr)
		}
	}
	if epoch != e.epoch {
		return
	}
	e.epoch++
	e.peak = e.rate
	e.ssthresh = max(e.rate/2, minRate)
	b.setRateLocked(e, now, e.ssthresh)
	// Tokens saved up before the 429 would be spent in one burst when the pause ends.
	if n := int(e.lim.TokensAt(now)); n > 0 {
		e.lim.ReserveN(now, n)
	}
	e.queueEnd = time.Time{}
}

// minRate is the lowest a key's rate falls: one call every ten seconds still learns the limit back.
const minRate = 0.1

func (b *Budget) growLocked(e *entry, now time.Time) {
	var next float64
	if e.rate < e.ssthresh {
		next = e.rate + slowStartGain
	} else {
		next = e.rate + max(1, additiveStep*e.peak)/e.rate
	}
	b.setRateLocked(e, now, min(next, b.opts.MaxRate))
}

func (b *Budget) setRateLocked(e *entry, now time.Time, r float64) {
	if r == e.rate {
		return
	}
	e.rate = r
	e.lim.SetLimitAt(now, rate.Limit(r))
	e.lim.SetBurstAt(now, b.burstLocked(e))
	if b.opts.Metrics != nil {
		b.opts.Metrics.RateChanged(e.id, r)
	}
}

// burstLocked is the size of e's bucket: MaxBurst until the platform first limits the key, then one
// second of calls at the learned rate (at least one, at most MaxBurst), so that a key whose limit is
// known does not save up more than the platform lets through at once.
func (b *Budget) burstLocked(e *entry) int {
	if e.peak == 0 {
		return b.opts.MaxBurst
	}
	return max(1, min(b.opts.MaxBurst, int(e.rate+0.5)))
}

func (b *Budget) closeBreakerLocked(e *entry) {
	if e.refused == nil {
		return
	}
	e.refused = nil
	if b.opts.Metrics != nil {
		b.opts.Metrics.BreakerChanged(e.id, false)
	}
}

func (b *Budget) deferredLocked(e *entry, reason string) {
	if b.opts.Metrics != nil {
		b.opts.Metrics.Deferred(e.id, reason)
	}
}

func (b *Budget) entryLocked(apiURL, apiKey string, now time.Time) *entry {
	sum := sha256.Sum256([]byte(apiKey))
	k := apiURL + "\x00" + hex.EncodeToString(sum[:])
	e, ok := b.keys[k]
	if !ok {
		r := b.opts.InitialRate
		e = &entry{
			id:       hex.EncodeToString(sum[:6]),
			lim:      rate.NewLimiter(rate.Limit(r), b.opts.MaxBurst),
			rate:     r,
			ssthresh: b.opts.MaxRate,
		}
		b.keys[k] = e
		if b.opts.Metrics != nil {
			b.opts.Metrics.RateChanged(e.id, r)
			b.opts.Metrics.BreakerChanged(e.id, false)
		}
	}
	e.lastUsed = now
	return e
}

// sweepLocked forgets keys unused for the idle timeout and no longer paused, so that memory stays bounded as keys come and go.
func (b *Budget) sweepLocked(now time.Time) {
	if now.Sub(b.lastSweep) < sweepEvery {
		return
	}
	b.lastSweep = now
	for k, e := range b.keys {
		// A Retry-After still running is kept whatever its length: forgetting it would let the next
		// call through before the platform said it may.
		if e.waiters == 0 && now.Sub(e.lastUsed) > b.opts.IdleTimeout && !now.Before(e.pausedUntil) {
			delete(b.keys, k)
			if b.opts.Metrics != nil {
				b.opts.Metrics.Forget(e.id)
			}
		}
	}
}

// Len returns how many keys the budget remembers.
func (b *Budget) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}

func copyError(e *pixxel.Error) *pixxel.Error {
	c := *e
	return &c
}
