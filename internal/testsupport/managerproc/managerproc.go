// Package managerproc runs the manager binary as its own process, as it runs in a cluster: the one
// runner of the bench (hack/bench), the chaos suite (internal/chaostest) and the install tests
// (internal/deploytest). Whatever it starts is registered with internal/testsupport/teardown, so that a
// command stopped by a signal stops its managers too.
package managerproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

// Build builds the manager (./cmd) into dir with go build's extra flags, and returns the binary's path.
func Build(dir string, flags ...string) (string, error) {
	bin := filepath.Join(dir, "manager")
	build := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, "./cmd")...)
	build.Dir, build.Stdout, build.Stderr = envtestutil.RepoRoot(), os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the manager: %w", err)
	}
	return bin, nil
}

// Process is one running manager.
type Process struct {
	Cmd     *exec.Cmd
	LogPath string
	// Exited is closed once the process has exited.
	Exited chan struct{}
}

// Start runs bin with args, and env as its environment when env is not nil; its output goes to logPath.
func Start(bin string, args, env []string, logPath string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Process{Cmd: exec.Command(bin, args...), LogPath: logPath, Exited: make(chan struct{})}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = logFile, logFile
	if err := p.Cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	go func() { _ = p.Cmd.Wait(); _ = logFile.Close(); close(p.Exited) }()
	teardown.Add(p.Kill)
	return p, nil
}

// Kill ends the process with SIGKILL (no clean-up, no lease release) and waits until it has exited.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.Exited
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	data, _ := os.ReadFile(p.LogPath)
	return string(data)
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimSpace(p.Log()), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
