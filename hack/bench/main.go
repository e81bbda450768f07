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
	"context"
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
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
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

// Result is one throughput run's figures; in bench-result.json's top level, each is the median over
// the runs.
type Result struct {
	N                int     `json:"n"`
	ReadyS           float64 `json:"ready_s"`
	FloorS           float64 `json:"floor_s"`
	FloorAPIS        float64 `json:"floor_api_s"`
	FloorKubeS       float64 `json:"floor_kube_s"`
	FloorSameWorkS   float64 `json:"floor_same_work_s"`
	Ratio            float64 `json:"ratio"`
	RatioSameWork    float64 `json:"ratio_same_work"`
	APICallsPerObj   float64 `json:"api_calls_per_obj"`
	API429Pct        float64 `json:"api_429_pct"`
	KubeWritesPerObj float64 `json:"kube_writes_per_obj"`
	EventsPerObj     float64 `json:"events_per_obj"`
	KubeReadsPerObj  float64 `json:"kube_reads_per_obj"`
	IdleAPICalls     int     `json:"idle_api_calls"`
	IdleKubeWrites   int     `json:"idle_kube_writes"`
	RSSMiB           float64 `json:"rss_mib"`
	CPUS             float64 `json:"cpu_s"`
	// CPU seconds while the same-work floor ran and while the operator got the objects Ready, and
	// their ratio: the share of the two cores a run got varies with the machine's other load, the CPU
	// its work takes much less.
	FloorCPUS            float64 `json:"floor_cpu_s"`
	ReadyCPUS            float64 `json:"ready_cpu_s"`
	CPURatioSameWork     float64 `json:"cpu_ratio_same_work"`
	FloorAPIServerCPUS   float64 `json:"floor_apiserver_cpu_s"`
	ReadyAPIServerCPUS   float64 `json:"ready_apiserver_cpu_s"`
	ReadyManagerCPUS     float64 `json:"ready_manager_cpu_s"`
	ReadyEtcdAndBenchCPU float64 `json:"ready_etcd_bench_cpu_s"`
	// IdleCPUS is the CPU the same processes take in the idle period, for comparison: an idle API
	// server is not free.
	IdleCPUS    float64 `json:"idle_cpu_s"`
	Pending     int     `json:"pending"`
	LatencyMS   int64   `json:"latency_ms"`
	KeyLimit    float64 `json:"key_limit"`
	Profile     string  `json:"profile"`
	ManagerArgs string  `json:"manager_args"`
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

// run is one throughput run on a fresh API server: the floors, then the operator.
func run(c config, managerBin, work string) (Result, error) {
	ctx := context.Background()
	cl, err := startCluster(work)
	if err != nil {
		return Result{}, err
	}
	defer cl.stop()

	fake := fakepixxel.New()
	defer fake.Close()
	fake.SetLatency(c.latency)
	fake.SetDefaultPending(c.pending)
	fake.SetKeyLimit(c.keyLimit)
	fake.KeepRequests(false)

	logf("measuring the floor: %d ConfigMaps created and updated twice by %d unthrottled workers", c.n, c.floorWorkers)
	floorKube, err := kubeFloor(ctx, cl.k8s, c)
	if err != nil {
		return Result{}, err
	}
	floorAPI := apiFloor(c)
	logf("floor: kubernetes %.2fs, platform %.2fs", floorKube.Seconds(), floorAPI.Seconds())
	logf("measuring the same-work floor: %d TaskDownloads created, status patched twice, ConfigMap created", c.n)
	floorSame, floorCPU, err := sameWorkFloor(ctx, cl.k8s, c)
	if err != nil {
		return Result{}, err
	}
	logf("same-work floor: %.2fs; CPU seconds %v", floorSame.Seconds(), floorCPU)

	if err := load.Namespace(ctx, cl.k8s, benchNS, "bench-key"); err != nil {
		return Result{}, err
	}
	args := managerArgs(c, cl.kubeconfig, fake.URL)
	logf("starting the manager: %s", strings.Join(args[1:], " "))
	mgr, err := startManager(managerBin, args, cmp.Or(c.managerLog, filepath.Join(work, "manager.log")))
	if err != nil {
		return Result{}, err
	}
	defer mgr.Kill()
	time.Sleep(3 * time.Second) // caches sync before the clock starts

	readyCh, err := watchReady(ctx, cl.cfg, benchNS, c.n, nil)
	if err != nil {
		return Result{}, err
	}
	gated, err := startGatedPods(ctx, cl.k8s, cl.cfg, c.n) // gates.go; nil without -gated-pods
	if err != nil {
		return Result{}, err
	}
	cpuBefore := cpuNow()
	before, err := kubeWrites(ctx, cl.clientset)
	if err != nil {
		return Result{}, err
	}
	logf("creating %d TaskDownloads with ConfigMap targets", c.n)
	if path := os.Getenv("BENCH_APISERVER_PROFILE"); path != "" {
		go profileAPIServer(ctx, cl.clientset, path)
	}
	if path := os.Getenv("BENCH_MANAGER_PROFILE"); path != "" {
		go profileManager(path, "cpu")
	}
	start := time.Now()
	if err := load.Run(c.n, c.floorWorkers, func(i int) error {
		return cl.k8s.Create(ctx, load.TaskDownload(benchNS, "wf", i))
	}); err != nil {
		return Result{}, err
	}
	if err := waitReady(readyCh, mgr, c.n, time.Duration(c.n)*50*time.Millisecond+5*time.Minute); err != nil {
		return Result{}, err
	}
	ready := time.Since(start)
	readyCPU := cpuNow().since(cpuBefore)
	logf("CPU seconds while getting Ready: %v", readyCPU)
	logf("all %d Ready after %.2fs", c.n, ready.Seconds())
	compareFloorWrites(ctx, cl.k8s)
	if err := gated.report(ctx, mgr.Exited, c.out); err != nil {
		return Result{}, err
	}
	time.Sleep(time.Second) // let the last status writes and events land in the metrics
	after, err := kubeWrites(ctx, cl.clientset)
	if err != nil {
		return Result{}, err
	}
	calls, limited := fake.TotalCalls(), fake.RateLimitedCalls()
	if path := os.Getenv("BENCH_MANAGER_PROFILE"); path != "" {
		profileManager(path+".heap", "heap")
	}
	logf("API server requests while getting Ready (the bench's own included):\n%s", requestsBetween(before, after))

	logf("watching a %s idle period", c.idle)
	idleStart := cpuNow()
	time.Sleep(c.idle)
	idleCPU := cpuNow().since(idleStart)
	logf("CPU seconds while idle: %v", idleCPU)
	idleEnd, err := kubeWrites(ctx, cl.clientset)
	if err != nil {
		return Result{}, err
	}
	rss, cpu, err := procStats(mgr.Cmd.Process.Pid)
	if err != nil {
		return Result{}, err
	}

	stateWrites := after.state - before.state - float64(c.n) // minus the bench's own creates
	floor := max(floorKube, floorAPI)
	return Result{
		N: c.n, ReadyS: round(ready.Seconds(), 2), FloorS: round(floor.Seconds(), 2),
		FloorAPIS: round(floorAPI.Seconds(), 2), FloorKubeS: round(floorKube.Seconds(), 2),
		Ratio:            round(ready.Seconds()/floor.Seconds(), 2),
		FloorSameWorkS:   round(floorSame.Seconds(), 2),
		RatioSameWork:    round(ready.Seconds()/floorSame.Seconds(), 2),
		APICallsPerObj:   round(float64(calls)/float64(c.n), 2),
		API429Pct:        round(100*float64(limited)/float64(max(calls, 1)), 2),
		KubeWritesPerObj: round(stateWrites/float64(c.n), 2),
		EventsPerObj:     round((after.events-before.events)/float64(c.n), 2),
		KubeReadsPerObj:  round((after.reads-before.reads)/float64(c.n), 2),
		IdleAPICalls:     fake.TotalCalls() - calls,
		IdleKubeWrites:   int(idleEnd.state - after.state + idleEnd.events - after.events),
		RSSMiB:           round(rss, 0), CPUS: round(cpu, 1),
		FloorCPUS: round(floorCPU.total(), 1), ReadyCPUS: round(readyCPU.total(), 1),
		CPURatioSameWork:   round(readyCPU.total()/max(floorCPU.total(), 0.1), 2),
		FloorAPIServerCPUS: floorCPU["kube-apiserver"], ReadyAPIServerCPUS: readyCPU["kube-apiserver"],
		ReadyManagerCPUS:     readyCPU["manager"],
		ReadyEtcdAndBenchCPU: round(readyCPU["etcd"]+readyCPU["bench"], 1),
		IdleCPUS:             round(idleCPU.total(), 1),
		Pending:              c.pending, LatencyMS: c.latency.Milliseconds(), KeyLimit: c.keyLimit, Profile: c.profile,
		ManagerArgs: strings.Join(args[1:], " "),
	}, nil
}
