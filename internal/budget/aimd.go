package budget

import (
	"time"

	"golang.org/x/time/rate"
)

const (
	// slowStartGain is how much each successful call adds to the rate (calls/s) during slow start: the
	// rate grows by a factor e every 1/slowStartGain seconds while calls succeed at the rate allowed.
	slowStartGain = 2
	// additiveStep is how much the rate grows per second of successful calls after a 429 (calls/s per
	// second), a fraction of the rate at which the 429 came so that the rate is back in a few seconds,
	// but at least one call/s per second.
	additiveStep = 0.1
	// minRate is the lowest a key's rate falls: one call every ten seconds still learns the limit back.
	minRate = 0.1
)

// aimd is a key's token bucket and the rate it has learned from the platform's answers: it grows fast
// while calls succeed (slow start) until the first 429, which halves it; from then on it grows back
// additively and halves again on the next 429 (AIMD), never above the ceiling nor below minRate.
type aimd struct {
	lim      *rate.Limiter
	current  float64 // calls/s allowed now
	ssthresh float64 // slow start ends here
	peak     float64 // the rate at the last 429: sets the additive step
	// epoch counts rate decreases; a 429 to a call admitted before the last decrease does not halve
	// the rate again (once per window, as TCP does).
	epoch    uint64
	ceiling  float64 // Options.MaxRate
	maxBurst int     // Options.MaxBurst
}

// newAIMD returns a key's bucket at initial calls/s, in slow start up to ceiling.
func newAIMD(initial, ceiling float64, maxBurst int) aimd {
	return aimd{
		lim:      rate.NewLimiter(rate.Limit(initial), maxBurst),
		current:  initial,
		ssthresh: ceiling,
		ceiling:  ceiling,
		maxBurst: maxBurst,
	}
}

// reserve takes the next call's turn and returns how long until it comes; cancel the reservation if
// the call is not made.
func (a *aimd) reserve(now time.Time) (*rate.Reservation, time.Duration) {
	r := a.lim.ReserveN(now, 1)
	return r, r.DelayFrom(now)
}

// grow learns from a call the platform served within its limit, and reports whether the rate changed.
func (a *aimd) grow(now time.Time) bool {
	var next float64
	if a.current < a.ssthresh {
		next = a.current + slowStartGain
	} else {
		next = a.current + max(1, additiveStep*a.peak)/a.current
	}
	return a.set(now, min(next, a.ceiling))
}

// halve learns from a 429 to a call admitted in the given epoch. It reports whether the 429 opened a
// new window (it was the first for a call admitted at the current rate), and whether the rate changed.
func (a *aimd) halve(now time.Time, epoch uint64) (window, changed bool) {
	if epoch != a.epoch {
		return false, false
	}
	a.epoch++
	a.peak = a.current
	a.ssthresh = max(a.current/2, minRate)
	changed = a.set(now, a.ssthresh)
	// Tokens saved up before the 429 would be spent in one burst when the pause ends.
	if n := int(a.lim.TokensAt(now)); n > 0 {
		a.lim.ReserveN(now, n)
	}
	return true, changed
}

// set makes r the rate, and reports whether it changed.
func (a *aimd) set(now time.Time, r float64) bool {
	if r == a.current {
		return false
	}
	a.current = r
	a.lim.SetLimitAt(now, rate.Limit(r))
	a.lim.SetBurstAt(now, a.burst())
	return true
}

// burst is the size of the bucket: maxBurst until the platform first limits the key, then one second
// of calls at the learned rate (at least one, at most maxBurst), so that a key whose limit is known
// does not save up more than the platform lets through at once.
func (a *aimd) burst() int {
	if a.peak == 0 {
		return a.maxBurst
	}
	return max(1, min(a.maxBurst, int(a.current+0.5)))
}
