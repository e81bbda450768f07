// Command bench measures the operator on a real kube-apiserver + etcd (envtest) and a fake platform
// endpoint, with the manager running as its own process. See docs/benchmarks.md for each figure.
//
// Throughput (`make bench`, the default mode): time until N TaskDownloads are Ready against the floor
// for the same work on the same machine, platform API calls and Kubernetes writes per object, calls
// and writes while idle, and the manager's peak RSS and CPU time. With -runs it repeats the whole run
// (a fresh API server each time, the floors measured just before the operator) and reports medians.
// The summary is the last line, and is also written, with each run, to bench-result.json:
//
//	BENCH n=1000 runs=3 ready_s=4.2 floor_s=2.9 ratio=1.45 ratio_same_work=1.2 api_calls_per_obj=3.00 ...
//
// Latency (`make bench-latency`, -mode=latency): the fake makes each task ready a fixed time T after
// its first call; for each T, how late after T the TaskDownload is seen Ready, as a share of T:
//
//	LATENCY t_s=6 late_p50_pct=4.1 late_p95_pct=9.0 calls_per_obj=21.0
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

// benchNS holds the measured TaskDownloads.
const benchNS = "bench"

// Profiles: how the manager is configured.
const (
	// profileBench gives the manager a short poll interval and a platform budget far above what the
	// fake serves, so that the run measures the operator's own work.
	profileBench = "bench"
	// profileDefaults runs the manager as a user gets it: only the API URL and addresses are set.
	profileDefaults = "defaults"
)

type config struct {
	mode         string
	n            int
	runs         int
	profile      string
	keyLimit     float64
	latency      time.Duration
	pending      int
	poll         time.Duration
	maxPoll      time.Duration
	idle         time.Duration
	floorWorkers int
	out          string
	managerArgs  string
	managerLog   string
	waits        durations
	perWait      int
}

func main() {
	var c config
	flag.StringVar(&c.mode, "mode", "throughput", "throughput (make bench) or latency (make bench-latency)")
	flag.IntVar(&c.n, "n", 1000, "number of TaskDownloads")
	flag.IntVar(&c.runs, "runs", 1, "throughput runs; the summary is their median")
	flag.StringVar(&c.profile, "profile", profileBench,
		"manager flags: bench (short polls, platform budget above the fake's) or defaults (the manager's own)")
	flag.Float64Var(&c.keyLimit, "key-limit", 0,
		"platform calls per second the fake allows the API key, answering 429 beyond it; 0 is no limit")
	flag.DurationVar(&c.latency, "latency", 50*time.Millisecond, "fake API latency")
	flag.IntVar(&c.pending, "pending", 2, "pending answers per task before ready (throughput)")
	flag.DurationVar(&c.poll, "poll-interval", 200*time.Millisecond,
		"manager --poll-interval (bench profile; 100ms in latency mode)")
	flag.DurationVar(&c.maxPoll, "max-poll-interval", 5*time.Minute,
		"manager --max-poll-interval (bench profile; 3s in latency mode)")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle period watched after all are Ready")
	flag.IntVar(&c.floorWorkers, "floor-workers", 16, "concurrent workers creating objects and measuring floors")
	flag.StringVar(&c.out, "out", "", "where to write the JSON result (default bench-result.json, "+
		"or bench-latency.json in latency mode)")
	flag.StringVar(&c.managerArgs, "manager-args", "", "manager flags added after the profile's, space-separated")
	flag.StringVar(&c.managerLog, "manager-log", "", "keep the manager's log at this path")
	c.waits = durations{time.Second, 6 * time.Second, 30 * time.Second}
	flag.Var(&c.waits, "ready-after", "latency mode: comma-separated times after which the fake's tasks are ready")
	flag.IntVar(&c.perWait, "per-wait", 50, "latency mode: TaskDownloads for each -ready-after time")
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // the bench reports through its own output
	// SIGINT, SIGTERM or the end of `go run` stop the control plane and the manager, not only the bench.
	teardown.Start()

	if err := c.complete(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := benchmark(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// complete fills the defaults that depend on the mode and profile, and rejects flags that conflict.
func (c *config) complete() error {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch c.mode {
	case "throughput":
		c.out = cmp.Or(c.out, "bench-result.json")
	case "latency":
		c.out = cmp.Or(c.out, "bench-latency.json")
		if !set["poll-interval"] {
			c.poll = 100 * time.Millisecond
		}
		if !set["max-poll-interval"] {
			c.maxPoll = 3 * time.Second
		}
		if c.profile != profileBench {
			return errors.New("-mode=latency runs the bench profile with its own poll intervals")
		}
	default:
		return fmt.Errorf("-mode=%q: want throughput or latency", c.mode)
	}
	switch c.profile {
	case profileBench:
	case profileDefaults:
		if set["poll-interval"] || set["max-poll-interval"] {
			return errors.New("-profile=defaults runs the manager's own poll intervals; use -manager-args to change them")
		}
		d := manager.DefaultOptions()
		c.poll, c.maxPoll = d.PollInterval, d.MaxPollInterval
	default:
		return fmt.Errorf("-profile=%q: want %s or %s", c.profile, profileBench, profileDefaults)
	}
	if c.n < 1 || c.runs < 1 || c.perWait < 1 || len(c.waits) == 0 {
		return errors.New("-n, -runs, -per-wait and -ready-after need at least one")
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// benchmark builds the manager once and runs the chosen mode.
func benchmark(c config) error {
	work, err := os.MkdirTemp("", "taskdownload-bench-")
	if err != nil {
		return err
	}
	defer teardown.Add(func() { _ = os.RemoveAll(work) })()
	managerBin, err := buildManager(work)
	if err != nil {
		return err
	}
	if c.mode == "latency" {
		return runLatency(c, managerBin, work)
	}
	return runThroughput(c, managerBin, work)
}

// managerArgs returns the manager's command line: the kubeconfig, the fake's URL and the addresses
// (metrics and probes off, so that runs on a shared machine do not collide), then the profile's
// flags, then -manager-args (later flags win).
func managerArgs(c config, kubeconfig, apiURL string) []string {
	args := []string{"--kubeconfig=" + kubeconfig, "--api-url=" + apiURL,
		"--metrics-bind-address=0", "--health-probe-bind-address=0"}
	if os.Getenv("BENCH_MANAGER_PROFILE") != "" {
		args = append(args, "--pprof-bind-address="+managerPprofAddr)
	}
	if c.profile == profileBench {
		args = append(args, "--poll-interval="+c.poll.String(), "--max-poll-interval="+c.maxPoll.String(),
			// The fake has no rate limit unless -key-limit is given; the default --api-qps protects a
			// real API key and would make the run measure that limit instead of the operator.
			"--api-qps=1000", "--api-burst=1000", "--zap-log-level=error")
	}
	args = append(args, gateArgs()...) // gates.go
	return append(args, strings.Fields(c.managerArgs)...)
}

// launchManager starts the manager with args, its log at -manager-log or in work, and gives its
// caches time to sync before the clock starts.
func launchManager(c config, managerBin, work string, args []string) (*managerproc.Process, error) {
	logf("starting the manager: %s", strings.Join(args[1:], " "))
	mgr, err := startManager(managerBin, args, cmp.Or(c.managerLog, filepath.Join(work, "manager.log")))
	if err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second) // caches sync before the clock starts
	return mgr, nil
}
