package budget

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

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

// spreadError is the error returned for a call deferred to a later turn in its key's budget.
func spreadError(after time.Duration) *DeferredError {
	return &DeferredError{Reason: DeferredBudget, APIError: &pixxel.Error{
		StatusCode: http.StatusTooManyRequests,
		Message:    "calls with this API key are spread out to stay within the platform's rate limit",
		RetryAfter: after,
	}}
}

// turns is who waits for a key's turn, and the later turns handed to callers that may not wait: a
// caller waits at most MaxWait and with at most MaxWaiters others, so that one busy key cannot hold
// every reconcile worker.
type turns struct {
	waiting int       // callers waiting for a turn or for the key's trial
	last    time.Time // the last turn handed out to a caller that did not wait
}

// mustDefer reports whether a call whose turn is wait away is handed a later turn instead of waiting.
func (q *turns) mustDefer(wait, maxWait time.Duration, maxWaiters int) bool {
	return wait > maxWait || (wait > 0 && q.waiting >= maxWaiters)
}

// later hands out a turn to a caller that does not wait: the key's next turn, wait from now, or one
// call at callsPerSecond after the last turn handed out, whichever is later, so that turns handed out
// at once come back one after the other. It returns how long until the turn.
func (q *turns) later(now time.Time, wait time.Duration, callsPerSecond float64) time.Duration {
	turn := now.Add(wait)
	if next := q.last.Add(time.Duration(float64(time.Second) / callsPerSecond)); next.After(turn) {
		turn = next
	}
	q.last = turn
	return turn.Sub(now)
}

// restart forgets the turns handed out: the rate they were spread at is no more.
func (q *turns) restart() { q.last = time.Time{} }

// waitTurn holds the caller until its turn, wait away, comes; then the call goes ahead unless a 429 came
// meanwhile and paused the key. On error the ticket's trial or probe is handed on.
func (b *Budget) waitTurn(ctx context.Context, e *entry, t ticket, wait time.Duration) error {
	err := b.sleep(ctx, wait)
	b.mu.Lock()
	defer b.mu.Unlock()
	e.turns.waiting--
	if err == nil {
		// A 429 that came while this call waited pauses it too.
		err = b.pausedLocked(e, b.opts.Clock.Now())
	}
	if err != nil {
		e.release(t)
	}
	return err
}

func (b *Budget) sleep(ctx context.Context, d time.Duration) error {
	t := b.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return waitCanceled(ctx)
	}
}

// waitCanceled is the error of a caller whose context ended while it waited.
func waitCanceled(ctx context.Context) error {
	return fmt.Errorf("waiting for the API key's rate limit: %w", ctx.Err())
}
