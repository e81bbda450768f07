// Package teardown makes sure that nothing a command starts outlives it: kube-apiserver and etcd, manager
// processes, whatever else runs beside the command.
//
// A command calls Start once, first thing; whatever it starts registers its stop with Add (envtestutil.Start
// does so for the control plane). On a normal return or a failure, the command's own defers stop what it
// started, as before. On SIGINT or SIGTERM, which end a Go program without running its defers, and when the
// command's parent goes away (`go run` and `go test` die of SIGTERM without passing it on, leaving the
// program running), Start's handler runs every registered stop, newest first, and exits.
package teardown

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// stop is one registered stop, run at most once whichever of the command and the handler gets to it first.
type stop struct {
	once sync.Once
	f    func()
}

func (s *stop) run() { s.once.Do(s.f) }

var (
	mu    sync.Mutex
	stops []*stop
)

// Add registers f to run when the command is stopped by a signal or loses its parent, and returns a
// function that runs f at most once, for the command's own defer or cleanup.
func Add(f func()) func() {
	s := &stop{f: f}
	mu.Lock()
	defer mu.Unlock()
	stops = append(stops, s)
	return s.run
}

// StopAll runs every registered stop that has not run yet, newest first.
func StopAll() {
	mu.Lock()
	all := slices.Clone(stops)
	mu.Unlock()
	slices.Reverse(all)
	for _, s := range all {
		s.run()
	}
}

// parentPoll is how often a command checks that its parent is still there.
const parentPoll = 500 * time.Millisecond

// parentGone returns a channel closed once the command's parent process has exited (the command is then
// reparented, so that its parent's pid changes).
func parentGone() <-chan struct{} {
	parent := os.Getppid()
	gone := make(chan struct{})
	go func() {
		for os.Getppid() == parent {
			time.Sleep(parentPoll)
		}
		close(gone)
	}()
	return gone
}

// Start catches SIGINT and SIGTERM and watches the command's parent. On a signal it runs every registered
// stop and exits with 128 + the signal's number, as the shell reports a process the signal ended; when
// the parent is gone, it does the same with exit code 1.
func Start() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	orphaned := parentGone()
	go func() {
		why, code := "its parent process exited", 1
		select {
		case s := <-signals:
			why = s.String()
			if n, ok := s.(syscall.Signal); ok {
				code = 128 + int(n)
			}
		case <-orphaned:
		}
		fmt.Fprintf(os.Stderr, "%s: %s: stopping what it started\n", filepath.Base(os.Args[0]), why)
		StopAll()
		os.Exit(code)
	}()
}

// Context is for a command that stops what it started through its context and its defers (the demo):
// the context is cancelled on SIGINT or SIGTERM, and when the command's parent goes away. cancel releases
// the signals.
func Context(parent context.Context) (ctx context.Context, cancel context.CancelFunc) {
	ctx, cancel = signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	orphaned := parentGone()
	go func() {
		select {
		case <-orphaned:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
