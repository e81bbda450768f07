package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// stopOrder stops the node before the runtime, and the runtime before the control plane.
var stopOrder = []string{kubelet, containerd, "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"}

// Down stops what Up started and removes what the node left behind. It goes on past errors, so that
// one stuck part does not leave the rest, and reports them all at the end.
func (c *Cluster) Down() error {
	var errs []error
	b, err := os.ReadFile(c.path("state.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &c.st); err != nil {
			errs = append(errs, fmt.Errorf("state.json: %w", err))
		}
	case errors.Is(err, fs.ErrNotExist):
		logf("no state in %s: nothing was started; removing leftovers only", c.State)
	default:
		errs = append(errs, err)
	}

	c.reportMemory()
	stop := func(name string) {
		if pid, ok := c.st.PIDs[name]; ok {
			if err := stopProcess(name, pid, 15*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	stop(kubelet)
	if pid, ok := c.st.PIDs[containerd]; ok && isProcess(pid, containerd) {
		c.removeContainers()
	}
	killCgroupProcesses()
	stop(containerd)
	c.killShims()
	for _, name := range stopOrder[2:] {
		stop(name)
	}

	errs = append(errs, unmountUnder(c.State)...)
	errs = append(errs, removeCgroups()...)
	errs = append(errs, removeIPTablesChains()...)
	restoreSysctls(c.st.Sysctls)
	if err := os.RemoveAll(c.State); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logf("down: stopped and removed %s (logs kept in %s)", c.State, c.Logs)
	return nil
}

// reportMemory logs what the running cluster holds in memory: each component's resident set, and
// the pods' cgroup (the operator and the test pods).
func (c *Cluster) reportMemory() {
	var parts []string
	total := 0
	for _, name := range stopOrder {
		pid, ok := c.st.PIDs[name]
		if !ok || !isProcess(pid, name) {
			continue
		}
		kib := rssKiB(pid)
		total += kib
		parts = append(parts, fmt.Sprintf("%s %d", name, kib/1024))
	}
	if len(parts) == 0 {
		return
	}
	pods := "unknown"
	if b, err := os.ReadFile("/sys/fs/cgroup/memory/kubepods/memory.usage_in_bytes"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pods = fmt.Sprint(n >> 20)
		}
	}
	logf("memory (RSS, MiB): %s; components %d; pods' cgroup %s", strings.Join(parts, ", "), total/1024, pods)
}

// rssKiB is a process's resident set size.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// deepestFirst orders paths so that a path comes before its parents.
func deepestFirst(a, b string) int { return len(b) - len(a) }
