package budget

import (
	"context"
)

// trial lets a new key's first call through alone: until the platform answers it, nobody knows whether
// the platform accepts the key, and a revoked key must not be tried by every object at once.
type trial struct {
	answered bool          // set by the key's first answer, whatever it is
	running  chan struct{} // closed when the call let through ends; nil when none is under way
}

// start lets the call through if the key has had no answer yet, and reports whether it did; the
// others wait for it until end.
func (tr *trial) start() bool {
	if tr.answered {
		return false
	}
	tr.running = make(chan struct{})
	return true
}

// end lets the waiting callers go: the call let through was answered, or not made.
func (tr *trial) end() {
	close(tr.running)
	tr.running = nil
}

// answer records that the platform answered a call with the key. Whatever the outcome, no more trial is
// needed: even a failed connection leaves the others to find out for themselves, at the key's rate.
func (tr *trial) answer() { tr.answered = true }

// awaitTrialLocked waits, at most MaxWait, for the key's trial call to end; it is called with b.mu held
// and returns with it released, nil to try again. Those who wait for the trial count against
// MaxWaiters like those who wait for a turn.
func (b *Budget) awaitTrialLocked(ctx context.Context, e *entry) error {
	if e.turns.waiting >= b.opts.MaxWaiters {
		b.opts.Metrics.Deferred(e.id, DeferredBudget)
		b.mu.Unlock()
		return spreadError(b.opts.MaxWait)
	}
	running := e.trial.running
	e.turns.waiting++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		e.turns.waiting--
		b.mu.Unlock()
	}()

	t := b.opts.Clock.NewTimer(b.opts.MaxWait)
	defer t.Stop()
	select {
	case <-running:
		return nil
	case <-t.C():
		b.mu.Lock()
		b.opts.Metrics.Deferred(e.id, DeferredBudget)
		b.mu.Unlock()
		return spreadError(b.opts.MaxWait)
	case <-ctx.Done():
		return waitCanceled(ctx)
	}
}
