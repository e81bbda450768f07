package budget

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// sweepEvery is how often idle keys are looked for.
const sweepEvery = time.Minute

// entry is one key's state, a field per mechanism.
type entry struct {
	id       string // KeyID, for metrics
	aimd     aimd
	pause    pause
	breaker  breaker
	trial    trial
	turns    turns
	lastUsed time.Time
}

// ticket is what an admitted call's outcome is learned against.
type ticket struct {
	epoch uint64 // the rate's, when the call was admitted
	trial bool   // the key's first call
	probe bool   // the one call made while the breaker is open
}

// release gives up a trial or probe whose call is over or not made, so that another caller makes it.
func (e *entry) release(t ticket) {
	if t.trial {
		e.trial.end()
	}
	if t.probe {
		e.breaker.probeEnded()
	}
}

// observe learns from a call's outcome.
func (b *Budget) observe(e *entry, t ticket, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Clock.Now()
	e.trial.answer()
	e.release(t)
	apiErr, isAPIErr := errors.AsType[*pixxel.Error](err)
	switch {
	case err == nil:
		if e.breaker.accepted(now) {
			b.opts.Metrics.BreakerChanged(e.id, false)
		}
		b.growLocked(e, now)
	case !isAPIErr:
		// No answer, or one that says nothing about the rate limit or the key.
	case apiErr.Kind() == pixxel.KindRateLimited:
		b.opts.Metrics.RateLimited(e.id)
		e.pause.apply(now, apiErr)
		window, changed := e.aimd.halve(now, t.epoch)
		if changed {
			b.opts.Metrics.RateChanged(e.id, e.aimd.current)
		}
		if window {
			e.turns.restart()
		}
	case apiErr.Kind() == pixxel.KindUnauthorized || apiErr.Kind() == pixxel.KindForbidden:
		if e.breaker.refuse(now, apiErr, b.opts.ProbeInterval) {
			b.opts.Metrics.BreakerChanged(e.id, true)
		}
	case apiErr.Kind() != pixxel.KindServerError:
		// The platform served the call (400, 404 and so on): it was within its limit.
		b.growLocked(e, now)
	}
}

func (b *Budget) growLocked(e *entry, now time.Time) {
	if e.aimd.grow(now) {
		b.opts.Metrics.RateChanged(e.id, e.aimd.current)
	}
}

// entryLocked returns the key's state, new if the key is.
func (b *Budget) entryLocked(apiURL, apiKey string, now time.Time) *entry {
	sum := sha256.Sum256([]byte(apiKey))
	k := apiURL + "\x00" + hex.EncodeToString(sum[:])
	e, ok := b.keys[k]
	if !ok {
		e = &entry{
			id:   keyID(sum),
			aimd: newAIMD(b.opts.InitialRate, b.opts.MaxRate, b.opts.MaxBurst),
		}
		b.keys[k] = e
		b.opts.Metrics.RateChanged(e.id, e.aimd.current)
		b.opts.Metrics.BreakerChanged(e.id, false)
	}
	e.lastUsed = now
	return e
}

// sweepLocked forgets keys unused for the idle timeout and no longer paused, so that memory stays
// bounded as keys come and go.
func (b *Budget) sweepLocked(now time.Time) {
	if now.Sub(b.lastSweep) < sweepEvery {
		return
	}
	b.lastSweep = now
	for k, e := range b.keys {
		// A Retry-After still running is kept whatever its length: forgetting it would let the next
		// call through before the platform said it may.
		if e.turns.waiting == 0 && now.Sub(e.lastUsed) > b.opts.IdleTimeout && !e.pause.running(now) {
			delete(b.keys, k)
			b.opts.Metrics.Forget(e.id)
		}
	}
}

func copyError(e *pixxel.Error) *pixxel.Error {
	c := *e
	return &c
}
