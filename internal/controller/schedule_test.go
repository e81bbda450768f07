package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
)

func TestRefreshAt(t *testing.T) {
	obtained := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := obtained.Add(d); return &x }
	dur := func(d time.Duration) *time.Duration { return &d }
	for _, tc := range []struct {
		name          string
		expires       *time.Time
		refreshBefore *time.Duration
		want          time.Duration // after obtained
		clamped       bool
	}{
		{"two thirds of the lifetime by default", at(time.Hour), nil, 40 * time.Minute, false},
		{"unknown expiry: two thirds of --default-url-ttl", nil, nil, 2 * time.Hour, false},
		{"refreshBefore ahead of expiry", at(time.Hour), dur(10 * time.Minute), 50 * time.Minute, false},
		{"refreshBefore leaving exactly a third", at(time.Hour), dur(40 * time.Minute), 20 * time.Minute, false},
		{"refreshBefore leaving less than a third is clamped", at(time.Hour), dur(50 * time.Minute), 20 * time.Minute, true},
		// The reported case: 1h ahead of a URL living 8 s asked for a new URL on arrival, 227 times in 12 s.
		{"refreshBefore beyond the lifetime is clamped", at(8 * time.Second), dur(time.Hour), 8 * time.Second / 3, true},
		{"refreshBefore equal to the lifetime is clamped", at(time.Minute), dur(time.Minute), 20 * time.Second, true},
		{"an expiry not after issue counts as unknown", at(-time.Second), nil, 2 * time.Hour, false},
		{"an expiry at issue counts as unknown", at(0), dur(time.Hour), 2 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, clamped := refreshAtFor(obtained, tc.expires, tc.refreshBefore, 3*time.Hour)
			g.Expect(got.Sub(obtained)).To(Equal(tc.want))
			g.Expect(clamped).To(Equal(tc.clamped))
			if tc.expires != nil && tc.expires.After(obtained) {
				g.Expect(got.Before(*tc.expires)).To(BeTrue(), "refreshed before expiry")
				g.Expect(got.Sub(obtained)).To(BeNumerically(">=", tc.expires.Sub(obtained)/3), "used for at least a third of its life")
			}
		})
	}
}

func TestPendingDelay(t *testing.T) {
	const poll, maxPoll = 100 * time.Millisecond, 3 * time.Second
	for _, tc := range []struct {
		name   string
		waited time.Duration
		u      float64
		want   time.Duration
	}{
		{"first pending answer: the poll interval", 0, 0.5, poll},
		{"short waits: never below the poll interval", 500 * time.Millisecond, 0.99, poll},
		{"a tenth of the wait", 6 * time.Second, 0.5, 600 * time.Millisecond},
		{"jitter down 10 %", 6 * time.Second, 0, 540 * time.Millisecond},
		{"jitter up 10 %", 6 * time.Second, 1, 660 * time.Millisecond},
		{"long waits: never above the maximum", 10 * time.Minute, 0.5, maxPoll},
		{"a clock gone backwards: the poll interval", -time.Minute, 0.5, poll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(pendingDelay(tc.waited, poll, maxPoll, tc.u)).To(BeNumerically("~", tc.want, time.Millisecond))
		})
	}
}

// Readiness is noticed at most about 10 % of the time waited after it happens, within the bounds,
// and the number of polls grows with the logarithm of the wait: simulate the schedule for package
// readiness times from 1 s to 10 min.
func TestPendingScheduleNoticesReadinessWithinTenPercent(t *testing.T) {
	g := NewWithT(t)
	const poll, maxPoll = 100 * time.Millisecond, 3 * time.Second
	for _, readyAfter := range []time.Duration{time.Second, 6 * time.Second, 30 * time.Second, 6 * time.Minute} {
		var waited time.Duration
		polls := 1
		for u := 0.0; waited < readyAfter; u = float64(polls%10) / 10 {
			waited += pendingDelay(waited, poll, maxPoll, u)
			polls++
		}
		late := waited - readyAfter
		g.Expect(late).To(BeNumerically("<=", max(readyAfter*11/100, poll)), "ready after %s, noticed %s late", readyAfter, late)
		if readyAfter == 30*time.Second {
			g.Expect(polls).To(BeNumerically("<=", 50), "polls for a package ready after 30 s")
		}
	}
}

// Polls start a delay apart: the call's own time is taken off the wait after its answer, but a slow
// answer still leaves half a delay before the next call.
func TestAfterCall(t *testing.T) {
	for _, tc := range []struct {
		delay, took, want time.Duration
	}{
		{100 * time.Millisecond, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, 30 * time.Millisecond, 70 * time.Millisecond},
		{100 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
		{100 * time.Millisecond, 2 * time.Second, 50 * time.Millisecond},
		{10 * time.Second, 2 * time.Second, 8 * time.Second},
	} {
		NewWithT(t).Expect(afterCall(tc.delay, tc.took)).To(Equal(tc.want), "delay %s, call took %s", tc.delay, tc.took)
	}
}

func TestWakeUp(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	after := func(d time.Duration) ctrl.Result { return ctrl.Result{RequeueAfter: d} }
	for _, tc := range []struct {
		name    string
		result  ctrl.Result
		expires *time.Time
		want    time.Duration
	}{
		{"nothing due", ctrl.Result{}, nil, 0},
		{"the steps' delay", after(time.Minute), nil, time.Minute},
		{"a negative delay becomes the floor, never ignored", after(-time.Hour), nil, time.Second},
		{"expiry sooner than the steps' delay", after(time.Hour), at(time.Minute), time.Minute + expiryGrace},
		{"expiry when nothing else is due", ctrl.Result{}, at(time.Minute), time.Minute + expiryGrace},
		{"steps' delay sooner than expiry", after(time.Second), at(time.Minute), time.Second},
		{"an expiry already past adds nothing", after(time.Minute), at(-time.Minute), time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(wakeUp(tc.result, tc.expires, now, time.Second).RequeueAfter).To(Equal(tc.want))
		})
	}
}

func TestObtainedAtRoundsUpToWholeSeconds(t *testing.T) {
	g := NewWithT(t)
	whole := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	g.Expect(obtainedAt(whole)).To(Equal(whole))
	g.Expect(obtainedAt(whole.Add(time.Millisecond))).To(Equal(whole.Add(time.Second)))
	g.Expect(obtainedAt(whole.Add(999 * time.Millisecond))).To(Equal(whole.Add(time.Second)))
}
