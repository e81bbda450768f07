package fetch

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Pods of one Job fail together when the storage does; their retries must spread out and stay bounded.
func TestRetryDelaysAreJitteredAndCapped(t *testing.T) {
	g := NewWithT(t)
	o := DefaultOptions()
	o.RetryDelay, o.RetryMaxDelay = 100*time.Millisecond, 2*time.Second
	seen := map[time.Duration]bool{}
	for range 20 {
		b := retryBackoff(o)
		first := b.Step()
		g.Expect(first).To(BeNumerically(">=", 100*time.Millisecond))
		g.Expect(first).To(BeNumerically("<=", 150*time.Millisecond))
		seen[first] = true
		second := b.Step()
		g.Expect(second).To(BeNumerically(">=", 200*time.Millisecond), "the delay doubles")
		for i := range 20 {
			d := b.Step()
			g.Expect(d).To(BeNumerically("<=", o.RetryMaxDelay), "never above --retry-max-delay")
			if i > 10 {
				g.Expect(d).To(BeNumerically(">=", o.RetryMaxDelay*2/3), "at the cap, spread over its last third")
				seen[d] = true
			}
		}
	}
	g.Expect(len(seen)).To(BeNumerically(">", 100), "delays are jittered, not in step")

	o.RetryDelay = time.Hour
	b := retryBackoff(o)
	g.Expect(b.Step()).To(BeNumerically("<=", o.RetryMaxDelay), "a first delay above the cap is capped too")
}

func TestDefaultOptionsAreComplete(t *testing.T) {
	g := NewWithT(t)
	o := DefaultOptions()
	o.URLFile, o.Dest = "/u", "/d"
	completed := o
	g.Expect(completed.complete()).To(Succeed())
	completed.HTTPClient, completed.Log = nil, nil
	g.Expect(completed).To(Equal(o), "complete() adds no default that DefaultOptions (and so the flags) lacks")
}
