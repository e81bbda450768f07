package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuUse is CPU seconds by process: kube-apiserver, etcd and the manager (this process's children,
// by command name) and the bench itself, which includes the fake platform.
type cpuUse map[string]float64

// cpuNow returns the CPU seconds used so far by the bench's processes.
func cpuNow() cpuUse {
	out := cpuUse{}
	self := os.Getpid()
	if st, err := readStat(self); err == nil {
		out["bench"] = st.cpuSeconds
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != self {
			continue
		}
		if st.name == "kube-apiserver" || st.name == "etcd" || st.name == "manager" {
			out[st.name] += st.cpuSeconds
		}
	}
	return out
}

// since returns the CPU seconds used since before, by process.
func (u cpuUse) since(before cpuUse) cpuUse {
	out := cpuUse{}
	for k, v := range u {
		out[k] = round(v-before[k], 1)
	}
	return out
}

// total returns the CPU seconds of all processes.
func (u cpuUse) total() float64 {
	var t float64
	for _, v := range u {
		t += v
	}
	return t
}

// procStat is what the bench reads from /proc/<pid>/stat.
type procStat struct {
	name       string
	ppid       int
	cpuSeconds float64 // user + system
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ')'.
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open || end+2 > len(raw) {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(raw[end+2:]))
	if len(fields) < 13 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const ticks = 100 // USER_HZ on Linux
	return procStat{name: string(raw[open+1 : end]), ppid: ppid, cpuSeconds: (utime + stime) / ticks}, nil
}

// procStats returns a process's peak RSS in MiB and CPU time in seconds, from /proc.
func procStats(pid int) (float64, float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var rssKiB float64
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			rssKiB, _ = strconv.ParseFloat(strings.Fields(v)[0], 64)
		}
	}
	st, err := readStat(pid)
	if err != nil {
		return 0, 0, err
	}
	return rssKiB / 1024, st.cpuSeconds, nil
}
