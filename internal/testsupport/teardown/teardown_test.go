package teardown

import (
	"slices"
	"testing"
)

// StopAll runs the stops newest first, and each at most once, whether the command's own defer or
// StopAll gets to it first.
func TestStopAllRunsEachStopOnceNewestFirst(t *testing.T) {
	mu.Lock()
	stops = nil
	mu.Unlock()
	var ran []string
	first := Add(func() { ran = append(ran, "control plane") })
	Add(func() { ran = append(ran, "fake") })
	third := Add(func() { ran = append(ran, "manager") })
	third() // the command stopped its manager itself
	StopAll()
	first()
	StopAll()
	if want := []string{"manager", "fake", "control plane"}; !slices.Equal(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
}
