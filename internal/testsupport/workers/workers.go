// Package workers runs a numbered job from a fixed number of goroutines, for benchmarks and tests that
// load the API server like concurrent clients would.
package workers

import (
	"sync"
	"sync/atomic"
)

// Run calls f for every i in [0, n) from the given number of goroutines and returns the first error;
// a goroutine stops at its first error, the others finish their jobs.
func Run(n, goroutines int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
