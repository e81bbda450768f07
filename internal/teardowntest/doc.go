// Package teardowntest checks that nothing a command starts outlives it: each command that starts a
// control plane, a fake or a manager (the bench in both modes, the demo, the chaos suite) is stopped with
// SIGTERM mid-run, as `timeout` or Ctrl-C would, and no process it started may remain. The same holds when
// only its parent dies, as when make's SIGTERM ends `go run` or `go test` without passing it on.
package teardowntest
