package budget

import (
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// pause holds back every call with a key while a Retry-After the platform gave to any of them runs,
// so that one object's 429 is not answered again to each of the others.
type pause struct {
	until time.Time
	err   *pixxel.Error // the 429 that set until, handed back to the calls held back
}

// apply takes in a 429's Retry-After; a shorter one does not end a longer pause early.
func (p *pause) apply(now time.Time, tooMany *pixxel.Error) {
	if tooMany.RetryAfter <= 0 {
		return
	}
	if until := now.Add(tooMany.RetryAfter); until.After(p.until) {
		p.until = until
		p.err = copyError(tooMany)
	}
}

// running reports whether calls are held back at now.
func (p *pause) running(now time.Time) bool { return now.Before(p.until) }

// deferral is the error a call gets while the pause runs: the platform's 429 with RetryAfter set to the
// time left; nil when it does not run.
func (p *pause) deferral(now time.Time) *DeferredError {
	if !p.running(now) {
		return nil
	}
	err := copyError(p.err)
	err.RetryAfter = p.until.Sub(now)
	return &DeferredError{APIError: err, Reason: DeferredPaused}
}

// pausedLocked returns the error to hand back while a Retry-After runs for the key, and counts it.
func (b *Budget) pausedLocked(e *entry, now time.Time) error {
	d := e.pause.deferral(now)
	if d == nil {
		return nil
	}
	b.opts.Metrics.Deferred(e.id, DeferredPaused)
	return d
}
