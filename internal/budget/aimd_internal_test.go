package budget

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

var t0 = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

// A key limited again and again still makes a call every ten seconds, and so learns its limit back.
func TestAIMDNeverFallsBelowMinRate(t *testing.T) {
	g := NewWithT(t)
	a := newAIMD(10, 20, 10)
	for range 20 {
		a.halve(t0, a.epoch)
	}
	g.Expect(a.current).To(Equal(minRate))
	window, changed := a.halve(t0, a.epoch)
	g.Expect(window).To(BeTrue(), "a 429 at the current rate opens a window")
	g.Expect(changed).To(BeFalse(), "but the rate is already as low as it goes: nothing to report")
}

// After a 429 at a low rate, the rate grows back by at least one call/s per second of successes.
func TestAIMDGrowsBackByAtLeastOneCallPerSecondPerSecond(t *testing.T) {
	g := NewWithT(t)
	a := newAIMD(4, 20, 10)
	a.halve(t0, a.epoch)
	g.Expect(a.current).To(Equal(2.0))
	// One second of calls at 2 calls/s: 10 % of the peak (0.4) is less than the floor of 1.
	a.grow(t0)
	a.grow(t0)
	g.Expect(a.current).To(BeNumerically("~", 3, 0.15), "2 + 1/2 + 1/2.5")
}

// A key's bucket holds MaxBurst calls until the platform first limits it, then one second of calls at the
// learned rate, at least one and at most MaxBurst.
func TestAIMDBurstIsOneSecondOfCallsOnceLimited(t *testing.T) {
	for _, tc := range []struct {
		name     string
		initial  float64
		maxBurst int
		halvings int
		want     int
	}{
		{name: "never limited", initial: 40, maxBurst: 100, want: 100},
		{name: "limited at 40 calls/s", initial: 40, maxBurst: 100, halvings: 1, want: 20},
		{name: "capped at MaxBurst", initial: 40, maxBurst: 5, halvings: 1, want: 5},
		{name: "at least one call", initial: 1, maxBurst: 100, halvings: 3, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			a := newAIMD(tc.initial, 100, tc.maxBurst)
			for range tc.halvings {
				a.halve(t0, a.epoch)
			}
			g.Expect(a.lim.Burst()).To(Equal(tc.want))
		})
	}
}
