// Package managertest runs the operator's manager in a test process, as the integration suites do.
package managertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"

	"k8s.io/client-go/rest"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
)

// Start builds the manager with o, starts it and waits for its cache to sync. The returned function
// stops it and waits until it has stopped, as a pod shutdown would.
func Start(cfg *rest.Config, o manager.Options) (stop func(), err error) {
	mgr, err := manager.New(cfg, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		if err := <-done; err != nil {
			return nil, fmt.Errorf("manager cache did not sync: %w", err)
		}
		return nil, fmt.Errorf("manager cache did not sync")
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}

// LogBuffer collects the manager's log output for tests that scan it (a secret must never be in it).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
