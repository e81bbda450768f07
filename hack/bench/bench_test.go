package main

import (
	"testing"
	"time"
)

func TestMediansTakeEachRunsOwnRatio(t *testing.T) {
	runs := []Result{
		{N: 1000, ReadyS: 10, FloorSameWorkS: 5, RatioSameWork: 2.0, IdleAPICalls: 0, Profile: "bench"},
		{N: 1000, ReadyS: 30, FloorSameWorkS: 20, RatioSameWork: 1.5, IdleAPICalls: 4, Profile: "bench"},
		{N: 1000, ReadyS: 12, FloorSameWorkS: 10, RatioSameWork: 1.2, IdleAPICalls: 0, Profile: "bench"},
	}
	m := medians(runs)
	// The ratio of the medians would be 12/10 = 1.2: a slow moment in one run must not pair one
	// run's time with another run's floor.
	if m.ReadyS != 12 || m.FloorSameWorkS != 10 || m.RatioSameWork != 1.5 {
		t.Errorf("medians: ready %v floor %v ratio %v, want 12, 10, 1.5", m.ReadyS, m.FloorSameWorkS, m.RatioSameWork)
	}
	if m.IdleAPICalls != 0 || m.N != 1000 || m.Profile != "bench" {
		t.Errorf("medians: idle %d n %d profile %q", m.IdleAPICalls, m.N, m.Profile)
	}
	if got := medians(runs[:2]).ReadyS; got != 20 {
		t.Errorf("median of two runs = %v, want their mean 20", got)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 50; i++ {
		sorted = append(sorted, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 25 * time.Millisecond, 95: 48 * time.Millisecond,
		100: 50 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(sorted, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func TestReadyAfterFlag(t *testing.T) {
	var d durations
	if err := d.Set("1s, 6s,30s"); err != nil || d.String() != "1s,6s,30s" {
		t.Fatalf("Set: %v, %s", err, d.String())
	}
	for _, bad := range []string{"", "1s,x", "0s", "-1s"} {
		if err := d.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
