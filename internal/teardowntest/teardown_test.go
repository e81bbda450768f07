package teardowntest

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// command is one command under test: how to build it, how to run it, and which of its descendants show
// that it is mid-run.
type command struct {
	name  string
	bin   string   // the binary, built by go with build's arguments
	build []string // go build or go test -c arguments
	args  []string
	// midRun names the processes that must all be running before the signal.
	midRun []string
}

func commands(dir string) []command {
	bench, demo, chaos := filepath.Join(dir, "bench"), filepath.Join(dir, "demo"), filepath.Join(dir, "chaos")
	return []command{
		{name: "bench", bin: bench, build: []string{"build", "-o", bench, "./hack/bench"},
			args:   []string{"-n", "20", "-idle", "1m", "-out", filepath.Join(dir, "bench.json")},
			midRun: []string{"kube-apiserver", "etcd", "manager"}},
		{name: "bench-latency", bin: bench, build: []string{"build", "-o", bench, "./hack/bench"},
			args:   []string{"-mode=latency", "-per-wait", "5", "-out", filepath.Join(dir, "latency.json")},
			midRun: []string{"kube-apiserver", "etcd", "manager"}},
		{name: "demo", bin: demo, build: []string{"build", "-o", demo, "./hack/demo"},
			args: []string{"--keep"}, midRun: []string{"kube-apiserver", "etcd"}},
		{name: "chaos", bin: chaos, build: []string{"test", "-c", "-o", chaos, "./internal/chaostest"},
			args:   []string{"-test.run", "TestFaultSoakConverges", "-test.v"},
			midRun: []string{"kube-apiserver", "etcd", "manager"}},
	}
}

// TestNothingOutlivesItsCommand stops each command with SIGTERM once its control plane and managers run,
// and, in a second run, kills only a shell that started it (as make's SIGTERM ends `go run`).
func TestNothingOutlivesItsCommand(t *testing.T) {
	dir := t.TempDir()
	built := map[string]bool{}
	for _, c := range commands(dir) {
		if !built[c.bin] {
			build := exec.Command("go", c.build...)
			build.Dir = envtestutil.RepoRoot()
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building %s: %v\n%s", c.name, err, out)
			}
			built[c.bin] = true
		}
		for _, how := range []string{"SIGTERM", "parent killed"} {
			t.Run(c.name+"/"+how, func(t *testing.T) {
				stopMidRun(t, c, how == "parent killed")
			})
		}
	}
}

// stopMidRun runs the command, waits until every process of c.midRun runs below it, then sends SIGTERM
// to it (or, viaParent, to a shell it runs under, which dies without passing the signal on), and checks
// that each process seen below it is gone soon after.
func stopMidRun(t *testing.T, c command, viaParent bool) {
	var cmd *exec.Cmd
	if viaParent {
		// sh waits for its child in the foreground; SIGTERM ends sh and leaves the child orphaned.
		cmd = exec.Command("sh", append([]string{"-c", `"$0" "$@"; exit $?`, c.bin}, c.args...)...)
	} else {
		cmd = exec.Command(c.bin, c.args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = envtestutil.RepoRoot()
	// Its own process group, so that a failing test can kill everything with one signal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	root := cmd.Process.Pid
	seen := map[int]string{}
	t.Cleanup(func() {
		for pid := range seen {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-root, syscall.SIGKILL)
	})

	deadline := time.Now().Add(6 * time.Minute) // the bench builds the manager first
	for !running(seen, c.midRun) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not all of %v started in time; output:\n%s", c.name, c.midRun, out.String())
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it was stopped; output:\n%s", c.name, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		maps.Copy(seen, descendants(root))
	}
	if err := syscall.Kill(root, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not exit within a minute of SIGTERM; output:\n%s", c.name, out.String())
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var left []string
		for pid, name := range seen {
			if alive(pid) {
				left = append(left, fmt.Sprintf("%s (%d)", name, pid))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(left)
			t.Fatalf("%s left %s running; output:\n%s", c.name, strings.Join(left, ", "), out.String())
		}
	}
}

// running reports whether a process of each name is among those seen.
func running(seen map[int]string, names []string) bool {
	for _, n := range names {
		found := false
		for pid, name := range seen {
			found = found || (name == n && alive(pid))
		}
		if !found {
			return false
		}
	}
	return true
}

// descendants returns the processes below root, by pid, with their command names, from /proc.
func descendants(root int) map[int]string {
	type proc struct {
		name string
		ppid int
	}
	procs := map[int]proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if name, ppid, _, ok := stat(pid); ok {
			procs[pid] = proc{name, ppid}
		}
	}
	out := map[int]string{}
	for pid, p := range procs {
		for up := p.ppid; up > 1; up = procs[up].ppid {
			if up == root {
				out[pid] = p.name
				break
			}
		}
	}
	return out
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	_, _, state, ok := stat(pid)
	return ok && state != "Z"
}

// stat reads a process's command name, parent and state from /proc/<pid>/stat.
func stat(pid int) (name string, ppid int, state string, ok bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ')'.
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return "", 0, "", false
	}
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 2 {
		return "", 0, "", false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return string(raw[open+1 : end]), ppid, fields[0], true
}
