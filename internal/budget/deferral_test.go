package budget_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/budget"
)

func TestDeferredTurnsAreSpreadAtTheKeysRate(t *testing.T) {
	g := NewWithT(t)
	b, _, m := newBudget(budget.Options{MaxRate: 10, MaxBurst: 1, MaxWait: time.Millisecond})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	turns := make([]time.Duration, 0, 5)
	for range 5 {
		err := call(g, b, "k", nil)
		after, deferred := budget.Deferred(err)
		g.Expect(deferred).To(BeTrue(), "the controller can tell a deferral from the platform's 429")
		g.Expect(asAPIError(g, err).RetryAfter).To(Equal(after), "and one that cannot still waits as for a 429")
		turns = append(turns, after)
	}
	// One call every 100 ms: turns handed out at once come back one after the other, not together.
	for i := 1; i < len(turns); i++ {
		g.Expect(turns[i] - turns[i-1]).To(BeNumerically("~", 100*time.Millisecond, 2*time.Millisecond))
	}
	g.Expect(m.deferred[budget.KeyID("k")+"/"+budget.DeferredBudget]).To(Equal(5))
}

func TestCallerWaitsForANearTurn(t *testing.T) {
	g := NewWithT(t)
	b, clk, _ := newBudget(budget.Options{MaxRate: 10, MaxBurst: 1, MaxWait: time.Second})
	g.Expect(call(g, b, "k", nil)).To(Succeed())

	admitted := make(chan error, 1)
	go func() { admitted <- call(g, b, "k", nil) }()
	g.Consistently(admitted).WithTimeout(50 * time.Millisecond).ShouldNot(Receive())
	g.Eventually(clk.HasWaiters).Should(BeTrue())
	clk.Step(100 * time.Millisecond)
	g.Eventually(admitted).Should(Receive(BeNil()))
}
