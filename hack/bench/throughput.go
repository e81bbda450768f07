package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
)

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

	fl, err := measureFloors(ctx, c, cl)
	if err != nil {
		return Result{}, err
	}
	if err := load.Namespace(ctx, cl.k8s, benchNS, "bench-key"); err != nil {
		return Result{}, err
	}
	args := managerArgs(c, cl.kubeconfig, fake.URL)
	mgr, err := launchManager(c, managerBin, work, args)
	if err != nil {
		return Result{}, err
	}
	defer mgr.Kill()

	rd, err := measureReady(ctx, c, cl, fake, mgr)
	if err != nil {
		return Result{}, err
	}
	id, err := measureIdle(ctx, c, cl, mgr)
	if err != nil {
		return Result{}, err
	}
	return throughputResult(c, args, fl, rd, id, fake.TotalCalls()), nil
}

// floors are how long the same machine takes for the work without the operator (floor.go).
type floors struct {
	kube, api, sameWork time.Duration
	sameWorkCPU         cpuUse
}

// measureFloors measures the floors on the run's API server, before the manager starts.
func measureFloors(ctx context.Context, c config, cl *cluster) (floors, error) {
	var f floors
	var err error
	logf("measuring the floor: %d ConfigMaps created and updated twice by %d unthrottled workers", c.n, c.floorWorkers)
	if f.kube, err = kubeFloor(ctx, cl.k8s, c); err != nil {
		return f, err
	}
	f.api = apiFloor(c)
	logf("floor: kubernetes %.2fs, platform %.2fs", f.kube.Seconds(), f.api.Seconds())
	logf("measuring the same-work floor: %d TaskDownloads created, status patched twice, ConfigMap created", c.n)
	if f.sameWork, f.sameWorkCPU, err = sameWorkFloor(ctx, cl.k8s, c); err != nil {
		return f, err
	}
	logf("same-work floor: %.2fs; CPU seconds %v", f.sameWork.Seconds(), f.sameWorkCPU)
	return f, nil
}

// readiness is what the operator took to get the TaskDownloads Ready: the time, the CPU, the API
// server's counts before and after, and the fake's calls.
type readiness struct {
	took           time.Duration
	cpu            cpuUse
	before, after  writes
	calls, limited int
}

// measureReady creates the TaskDownloads and measures the operator's work until all are Ready.
func measureReady(ctx context.Context, c config, cl *cluster, fake *fakepixxel.Server,
	mgr *managerproc.Process) (readiness, error) {
	var r readiness
	readyCh, err := watchReady(ctx, cl.cfg, benchNS, c.n, nil)
	if err != nil {
		return r, err
	}
	gated, err := startGatedPods(ctx, cl.k8s, cl.cfg, c.n) // gates.go; nil without -gated-pods
	if err != nil {
		return r, err
	}
	cpuBefore := cpuNow()
	if r.before, err = kubeWrites(ctx, cl.clientset); err != nil {
		return r, err
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
		return r, err
	}
	if err := waitReady(readyCh, mgr, c.n, time.Duration(c.n)*50*time.Millisecond+5*time.Minute); err != nil {
		return r, err
	}
	r.took = time.Since(start)
	r.cpu = cpuNow().since(cpuBefore)
	logf("CPU seconds while getting Ready: %v", r.cpu)
	logf("all %d Ready after %.2fs", c.n, r.took.Seconds())
	compareFloorWrites(ctx, cl.k8s)
	if err := gated.report(ctx, mgr.Exited, c.out); err != nil {
		return r, err
	}
	time.Sleep(time.Second) // let the last status writes and events land in the metrics
	if r.after, err = kubeWrites(ctx, cl.clientset); err != nil {
		return r, err
	}
	r.calls, r.limited = fake.TotalCalls(), fake.RateLimitedCalls()
	if path := os.Getenv("BENCH_MANAGER_PROFILE"); path != "" {
		profileManager(path+".heap", "heap")
	}
	logf("API server requests while getting Ready (the bench's own included):\n%s", requestsBetween(r.before, r.after))
	return r, nil
}

// idleness is what the idle period after Ready cost, and the manager's totals at its end.
type idleness struct {
	cpu       cpuUse
	end       writes
	rss, cpuS float64
}

// measureIdle watches the idle period after all are Ready.
func measureIdle(ctx context.Context, c config, cl *cluster, mgr *managerproc.Process) (idleness, error) {
	var i idleness
	var err error
	logf("watching a %s idle period", c.idle)
	idleStart := cpuNow()
	time.Sleep(c.idle)
	i.cpu = cpuNow().since(idleStart)
	logf("CPU seconds while idle: %v", i.cpu)
	if i.end, err = kubeWrites(ctx, cl.clientset); err != nil {
		return i, err
	}
	if i.rss, i.cpuS, err = procStats(mgr.Cmd.Process.Pid); err != nil {
		return i, err
	}
	return i, nil
}

// throughputResult puts a run's figures together; totalCalls is the fake's count at the end of the
// idle period.
func throughputResult(c config, args []string, fl floors, rd readiness, id idleness, totalCalls int) Result {
	stateWrites := rd.after.state - rd.before.state - float64(c.n) // minus the bench's own creates
	floor := max(fl.kube, fl.api)
	ready := rd.took.Seconds()
	return Result{
		N: c.n, ReadyS: round(ready, 2), FloorS: round(floor.Seconds(), 2),
		FloorAPIS: round(fl.api.Seconds(), 2), FloorKubeS: round(fl.kube.Seconds(), 2),
		Ratio:            round(ready/floor.Seconds(), 2),
		FloorSameWorkS:   round(fl.sameWork.Seconds(), 2),
		RatioSameWork:    round(ready/fl.sameWork.Seconds(), 2),
		APICallsPerObj:   round(float64(rd.calls)/float64(c.n), 2),
		API429Pct:        round(100*float64(rd.limited)/float64(max(rd.calls, 1)), 2),
		KubeWritesPerObj: round(stateWrites/float64(c.n), 2),
		EventsPerObj:     round((rd.after.events-rd.before.events)/float64(c.n), 2),
		KubeReadsPerObj:  round((rd.after.reads-rd.before.reads)/float64(c.n), 2),
		IdleAPICalls:     totalCalls - rd.calls,
		IdleKubeWrites:   int(id.end.state - rd.after.state + id.end.events - rd.after.events),
		RSSMiB:           round(id.rss, 0), CPUS: round(id.cpuS, 1),
		FloorCPUS: round(fl.sameWorkCPU.total(), 1), ReadyCPUS: round(rd.cpu.total(), 1),
		CPURatioSameWork:   round(rd.cpu.total()/max(fl.sameWorkCPU.total(), 0.1), 2),
		FloorAPIServerCPUS: fl.sameWorkCPU["kube-apiserver"], ReadyAPIServerCPUS: rd.cpu["kube-apiserver"],
		ReadyManagerCPUS:     rd.cpu["manager"],
		ReadyEtcdAndBenchCPU: round(rd.cpu["etcd"]+rd.cpu["bench"], 1),
		IdleCPUS:             round(id.cpu.total(), 1),
		Pending:              c.pending, LatencyMS: c.latency.Milliseconds(), KeyLimit: c.keyLimit, Profile: c.profile,
		ManagerArgs: strings.Join(args[1:], " "),
	}
}
