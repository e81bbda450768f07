package budget_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/budget"
)

func TestSlowStartGrowsFastAndStopsAtTheCeiling(t *testing.T) {
	g := NewWithT(t)
	b, _, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 1000, InitialRate: 10})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	g.Expect(m.rateOfK()).To(BeNumerically("~", 12, 0.01), "each success adds 2 calls/s in slow start")
	for range 100 {
		g.Expect(call(g, b, "k", nil)).To(Succeed())
	}
	g.Expect(m.rateOfK()).To(Equal(100.0), "never above --api-qps")
}

func TestRateLimitHalvesOncePerWindowAndGrowsBackAdditively(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 1000, InitialRate: 40, MaxWait: time.Millisecond})
	g.Expect(call(g, b, "k", nil)).To(Succeed()) // 42
	// Three calls in flight together are answered 429: the rate halves once, not three times.
	dones := make([]func(error), 0, 3)
	for range 3 {
		done, err := b.Admit(context.Background(), api, "k")
		g.Expect(err).NotTo(HaveOccurred())
		dones = append(dones, done)
	}
	for _, done := range dones {
		done(tooMany(0))
	}
	g.Expect(m.rateOfK()).To(Equal(21.0))
	g.Expect(m.limited[budget.KeyID("k")]).To(Equal(3))

	// Tokens saved before the 429 are gone; the bucket now holds one second at the new rate.
	g.Expect(asAPIError(g, call(g, b, "k", nil)).RetryAfter).To(BeNumerically(">", 0))
	clk.Step(time.Second)

	// Congestion avoidance: one second of calls at the rate (21 successes) adds about
	// max(1, 10 % of 42) = 4.2 calls/s, not 2 per call as in slow start.
	for range 21 {
		g.Expect(call(g, b, "k", nil)).To(Succeed())
	}
	g.Expect(m.rateOfK()).To(BeNumerically("~", 25, 0.5))

	// A new 429 halves again.
	clk.Step(time.Second)
	g.Expect(call(g, b, "k", tooMany(0))).To(Succeed())
	g.Expect(m.rateOfK()).To(BeNumerically("~", 12.5, 0.3))
}
