package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// start runs a component in its own process group (so that Ctrl-C reaches only make and the tests,
// and down stops it), its output in the logs directory, and records its PID.
func (c *Cluster) start(name, bin string, args ...string) error {
	log, err := os.Create(c.logFile(name))
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = newProcessGroup()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	c.st.PIDs[name] = cmd.Process.Pid
	logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, c.logFile(name))
	// The process outlives this command: release it instead of waiting.
	_ = cmd.Process.Release()
	return c.saveState()
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, timeout time.Duration) error {
	return c.waitFor(ctx, name, timeout, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// waitFor polls cond until it holds, and gives up at once when the component it waits for has exited
// (the kube-scheduler must run too by the time the node is Ready).
func (c *Cluster) waitFor(
	ctx context.Context,
	name string,
	timeout time.Duration,
	cond wait.ConditionWithContextFunc,
) error {
	return wait.PollUntilContextTimeout(
		ctx,
		250*time.Millisecond,
		timeout,
		true,
		func(ctx context.Context) (bool, error) {
			for component, pid := range c.st.PIDs {
				if !alive(pid) {
					return false, fmt.Errorf(
						"waiting for %s: %s exited (log: %s)",
						name,
						component,
						c.logFile(component),
					)
				}
			}
			return cond(ctx)
		},
	)
}

// isProcess reports whether pid runs a program whose name contains want, so that a PID reused by
// another process since up is left alone.
func isProcess(pid int, want string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	return strings.Contains(filepath.Base(argv0), want)
}

// stopProcess sends SIGTERM, then SIGKILL after grace, to pid if it still runs name.
func stopProcess(name string, pid int, grace time.Duration) error {
	if !isProcess(pid, name) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for range 50 {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) did not stop", name, pid)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
