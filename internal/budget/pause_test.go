package budget_test

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/budget"
)

func TestRetryAfterPausesEveryCallerOfTheKey(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	g.Expect(call(g, b, "k", tooMany(30*time.Second))).To(Succeed())

	clk.Step(10 * time.Second)
	err := call(g, b, "k", nil)
	apiErr := asAPIError(g, err)
	g.Expect(apiErr.StatusCode).To(Equal(http.StatusTooManyRequests))
	g.Expect(apiErr.Code).To(Equal("rate_limited"), "the platform's own answer")
	g.Expect(apiErr.RetryAfter).To(Equal(20*time.Second), "the time left, for the controller to requeue at")
	after, deferred := budget.Deferred(err)
	g.Expect(deferred).To(BeTrue())
	g.Expect(after).To(Equal(20 * time.Second))
	g.Expect(call(g, b, "other", nil)).To(Succeed(), "another key is not paused")
	g.Expect(m.deferred[budget.KeyID("k")+"/"+budget.DeferredPaused]).To(Equal(1))

	clk.Step(20 * time.Second)
	g.Expect(call(g, b, "k", nil)).To(Succeed())
}

// A Retry-After of a day was forgotten after the key had been idle for 15 minutes.
func TestRetryAfterIsRememberedUntilItEnds(t *testing.T) {
	g := NewWithT(t)
	b, clk, _ := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Minute, IdleTimeout: 5 * time.Minute})
	g.Expect(call(g, b, "k", tooMany(24*time.Hour))).To(Succeed())
	for _, idle := range []time.Duration{15 * time.Minute, 6 * time.Hour, 17*time.Hour + 44*time.Minute} {
		clk.Step(idle)
		g.Expect(call(g, b, "other", nil)).To(Succeed(), "another key's call runs the sweep")
		err := call(g, b, "k", nil)
		after, deferred := budget.Deferred(err)
		g.Expect(deferred).To(BeTrue(), "still paused after %s idle", idle)
		g.Expect(after).To(BeNumerically(">", 0))
	}
	clk.Step(time.Minute)
	g.Expect(call(g, b, "other", nil)).To(Succeed())
	g.Expect(call(g, b, "k", nil)).To(Succeed(), "the day is over")
}
