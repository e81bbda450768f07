package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
