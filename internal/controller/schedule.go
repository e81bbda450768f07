package controller

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// The operator's timing, as pure functions of what status says and the time now, so that each is
// table-tested: when to replace a URL, when to poll a pending package again, when to wake up.

// minUseFraction is the part of a URL's lifetime it is used for at least, whatever spec.refreshBefore
// asks: a refreshBefore at or beyond the lifetime would otherwise ask for a new URL as soon as one
// arrives, again and again.
const minUseFraction = 3

// refreshAtFor is when a URL obtained at obtained should be replaced: refreshBefore ahead of its expiry,
// or once two thirds of its lifetime have passed. An unknown expiry (nil, or not after obtained) means
// a lifetime of defaultTTL. clamped says refreshBefore was too long for this URL and a third of its
// lifetime is used instead.
func refreshAtFor(obtained time.Time, expiresAt *time.Time, refreshBefore *time.Duration, defaultTTL time.Duration) (at time.Time, clamped bool) {
	if expiresAt == nil || !expiresAt.After(obtained) {
		return obtained.Add(defaultTTL * 2 / 3), false
	}
	lifetime := expiresAt.Sub(obtained)
	if refreshBefore == nil {
		return obtained.Add(lifetime * 2 / 3), false
	}
	earliest := obtained.Add(lifetime / minUseFraction)
	at = expiresAt.Add(-*refreshBefore)
	if at.Before(earliest) {
		return earliest, true
	}
	return at, false
}

// obtainedAt is when a URL obtained at now counts as obtained: now rounded up to the whole second,
// since status keeps whole seconds and the refresh is computed again from status later. Rounding up
// never makes a URL look older than it is, so a refresh is never scheduled ahead of time.
func obtainedAt(now time.Time) time.Time {
	if t := now.Truncate(time.Second); !t.Equal(now) {
		return t.Add(time.Second)
	}
	return now
}

// pendingLateness is how late, as a fraction of the time already waited, a pending poll may notice
// that the package became ready.
const pendingLateness = 0.1

// pendingDelay is the wait before the next poll of a package that has been pending for waited. Polls
// are spaced by a tenth of the time waited so far, so that readiness is noticed at most about 10 %
// of the wait after it happens (doubling the delay could be 100 % late), within [poll, maxPoll].
// u, uniform in [0, 1), adds ±10 % jitter so that objects created together spread out.
func pendingDelay(waited, poll, maxPoll time.Duration, u float64) time.Duration {
	d := time.Duration(float64(max(waited, 0)) * pendingLateness * (0.9 + 0.2*u))
	return min(max(d, poll), maxPoll)
}

// afterCall is the requeue of a reconcile that polled a pending package, took after that poll's
// request was sent: the next request goes out delay after the previous one whatever the platform's
// and the API server's latency, so a package that becomes ready just after a poll is seen one delay
// later, not one delay plus the call and the status write. The reconcile's end and the next call are
// still at least half a delay apart, so that a slow platform is not polled back to back.
func afterCall(delay, took time.Duration) time.Duration {
	return max(delay-took, delay/2)
}

// expiryGrace wakes a reconcile a little after a URL's expiry, so that it sees the expiry passed.
const expiryGrace = 50 * time.Millisecond

// wakeUp is the result a reconcile returns: the steps' result, never negative (a time already past
// becomes floor from now, not an ignored negative delay), and no later than just after the published
// URL's expiry, so that an expired URL is withdrawn on time whether or not anything else is due.
func wakeUp(result ctrl.Result, expiresAt *time.Time, now time.Time, floor time.Duration) ctrl.Result {
	if result.RequeueAfter < 0 {
		result.RequeueAfter = floor
	}
	if expiresAt == nil {
		return result
	}
	until := expiresAt.Sub(now) + expiryGrace
	if until > 0 && (result.RequeueAfter == 0 || until < result.RequeueAfter) {
		result.RequeueAfter = until
	}
	return result
}
