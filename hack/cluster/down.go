package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// removeContainers stops and deletes every container and sandbox through containerd, while it runs.
func (c *Cluster) removeContainers() {
	out, err := c.ctrOutput("tasks", "ls", "-q")
	if err == nil {
		for id := range strings.FieldsSeq(out) {
			_ = c.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", id)
		}
		for id := range strings.FieldsSeq(out) {
			_ = c.ctr("tasks", "delete", "--force", id)
		}
	}
	if out, err := c.ctrOutput("containers", "ls", "-q"); err == nil {
		for id := range strings.FieldsSeq(out) {
			_ = c.ctr("containers", "delete", id)
		}
	}
}

// killShims stops containerd's shims for this cluster: they outlive containerd by design, and are
// recognised by the socket address containerd gave them.
func (c *Cluster) killShims() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") &&
			strings.Contains(string(cmdline), c.containerdSocket()) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
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

// cgroupRoots are the hierarchies mounted under /sys/fs/cgroup (v1 controllers, unified, or v2).
func cgroupRoots() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var roots []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// mountinfo: ... mount-point ... - fstype source options
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		fsType, mountPoint := fields[sep+1], fields[4]
		if (fsType == "cgroup" || fsType == "cgroup2") && strings.HasPrefix(mountPoint, "/sys/fs/cgroup") {
			roots = append(roots, mountPoint)
		}
	}
	return roots
}

// kubeletCgroups are the cgroup trees the kubelet (cgroupfs driver) and its containers live in.
var kubeletCgroups = []string{"kubepods", "kubepods.slice"}

// killCgroupProcesses kills every process left in the pods' cgroups: containers whose runtime is gone.
func killCgroupProcesses() {
	for _, root := range cgroupRoots() {
		for _, top := range kubeletCgroups {
			_ = filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(path)
				for f := range strings.FieldsSeq(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				return nil
			})
		}
	}
}

// removeCgroups removes the pods' cgroup trees, deepest first.
func removeCgroups() []error {
	var errs []error
	for _, root := range cgroupRoots() {
		for _, top := range kubeletCgroups {
			var dirs []string
			_ = filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, path)
				}
				return nil
			})
			slices.SortFunc(dirs, deepestFirst)
			for _, d := range dirs {
				var err error
				// A cgroup whose last process just died may be busy for a moment.
				for range 20 {
					if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
						err = nil
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
				}
			}
		}
	}
	return errs
}

// unmountUnder unmounts everything mounted below dir (the kubelet's volumes, containerd's snapshots
// and sandboxes' /dev/shm), deepest first.
func unmountUnder(dir string) []error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []error{err}
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	slices.SortFunc(points, deepestFirst)
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
			}
		}
	}
	return errs
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// removeIPTablesChains removes the chains the kubelet makes (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT,
// KUBE-FIREWALL and the like) from every table, with the rules that jump to them.
func removeIPTablesChains() []error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for line := range strings.SplitSeq(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && jumpsToKube(f):
					args := append([]string{"-w", "-t", table, "-D"}, f[1:]...)
					if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, out))
					}
				}
			}
			for _, ch := range chains {
				_ = exec.Command(bin, "-w", "-t", table, "-F", ch).Run()
			}
			for _, ch := range chains {
				if out, err := exec.Command(bin, "-w", "-t", table, "-X", ch).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("%s -t %s -X %s: %w: %s", bin, table, ch, err, out))
				}
			}
		}
	}
	return errs
}

// deepestFirst orders paths so that a path comes before its parents.
func deepestFirst(a, b string) int { return len(b) - len(a) }

func jumpsToKube(rule []string) bool {
	for i, f := range rule {
		if (f == "-j" || f == "-g") && i+1 < len(rule) && strings.HasPrefix(rule[i+1], "KUBE-") {
			return true
		}
	}
	return false
}
