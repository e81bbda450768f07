// Command bench measures the operator at scale on a real kube-apiserver + etcd (envtest) and a fake
// platform endpoint: time until N TaskDownloads are Ready against the floor for the same work on the
// same machine, platform API calls and Kubernetes writes per object, calls and writes while idle, and
// the manager's peak RSS and CPU time. Run it with `make bench` (N=10000 for the large run).
//
// The summary is the last line, and is also written as JSON to bench-result.json:
//
//	BENCH n=1000 ready_s=4.2 floor_s=2.9 ratio=1.45 api_calls_per_obj=3.00 kube_writes_per_obj=3.0 ...
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

// benchNS holds the measured TaskDownloads.
const benchNS = "bench"

// stateResources are the resources whose writes count as the operator's Kubernetes writes.
var stateResources = map[string]bool{"taskdownloads": true, "configmaps": true, "secrets": true}

type config struct {
	n            int
	latency      time.Duration
	pending      int
	poll         time.Duration
	maxPoll      time.Duration
	idle         time.Duration
	floorWorkers int
	out          string
	managerArgs  string
	managerLog   string
}

// Result is the bench's summary.
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
	KubeWritesPerObj float64 `json:"kube_writes_per_obj"`
	EventsPerObj     float64 `json:"events_per_obj"`
	KubeReadsPerObj  float64 `json:"kube_reads_per_obj"`
	IdleAPICalls     int     `json:"idle_api_calls"`
	IdleKubeWrites   int     `json:"idle_kube_writes"`
	RSSMiB           float64 `json:"rss_mib"`
	CPUS             float64 `json:"cpu_s"`
	Pending          int     `json:"pending"`
	LatencyMS        int64   `json:"latency_ms"`
	PollInterval     string  `json:"poll_interval"`
	ManagerArgs      string  `json:"manager_args"`
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 1000, "number of TaskDownloads")
	flag.DurationVar(&c.latency, "latency", 50*time.Millisecond, "fake API latency")
	flag.IntVar(&c.pending, "pending", 2, "pending answers per task before ready")
	flag.DurationVar(&c.poll, "poll-interval", 200*time.Millisecond, "manager --poll-interval")
	flag.DurationVar(&c.maxPoll, "max-poll-interval", 5*time.Minute, "manager --max-poll-interval")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle period watched after all are Ready")
	flag.IntVar(&c.floorWorkers, "floor-workers", 16, "concurrent workers for the Kubernetes floor")
	flag.StringVar(&c.out, "out", "bench-result.json", "where to write the JSON result")
	// The fake has no rate limit of its own; the default --api-qps (20) protects a real API key and
	// would make the run measure that limit instead of the operator.
	flag.StringVar(&c.managerArgs, "manager-args", "--api-qps=1000 --api-burst=1000",
		"extra manager flags, space-separated")
	flag.StringVar(&c.managerLog, "manager-log", "", "keep the manager's log at this path")
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // the bench reports through its own output
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(c config) error {
	ctx := context.Background()
	root := envtestutil.RepoRoot()
	work, err := os.MkdirTemp("", "taskdownload-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	logf("building the manager")
	managerBin := filepath.Join(work, "manager")
	// Built as the Dockerfile builds it: the binary's mapped pages count in its RSS.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", managerBin, "./cmd")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the manager: %w", err)
	}

	logf("starting kube-apiserver + etcd")
	env, cfg, err := envtestutil.Start(func(e *envtest.Environment) {
		if path := os.Getenv("BENCH_APISERVER_LOG"); path != "" {
			f, err := os.Create(path)
			if err == nil {
				e.ControlPlane.GetAPIServer().Out, e.ControlPlane.GetAPIServer().Err = f, f
			}
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	unthrottled := envtestutil.Unthrottled(cfg)
	k8s, err := client.New(unthrottled, client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(unthrottled)
	if err != nil {
		return err
	}

	fake := fakepixxel.New()
	defer fake.Close()
	fake.SetLatency(c.latency)
	fake.SetDefaultPending(c.pending)
	fake.KeepRequests(false)

	logf("measuring the floor: %d ConfigMaps created and updated twice by %d unthrottled workers", c.n, c.floorWorkers)
	floorKube, err := kubeFloor(ctx, k8s, c)
	if err != nil {
		return err
	}
	floorAPI := apiFloor(c)
	logf("floor: kubernetes %.2fs, platform %.2fs", floorKube.Seconds(), floorAPI.Seconds())
	logf("measuring the same-work floor: %d TaskDownloads created, status patched twice, ConfigMap created", c.n)
	floorSame, err := sameWorkFloor(ctx, k8s, c)
	if err != nil {
		return err
	}
	logf("same-work floor: %.2fs", floorSame.Seconds())

	kubeconfig, err := envtestutil.WriteKubeconfig(env, work, "bench-manager")
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}); err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: load.APIKeySecret},
		StringData: map[string]string{"api-key": "bench-key"},
	}); err != nil {
		return err
	}

	args := make([]string, 0, 16)
	args = append(args,
		"--kubeconfig="+kubeconfig, "--api-url="+fake.URL,
		"--poll-interval="+c.poll.String(), "--max-poll-interval="+c.maxPoll.String(),
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-log-level=error")
	if os.Getenv("BENCH_MANAGER_PROFILE") != "" {
		args = append(args, "--pprof-bind-address="+managerPprofAddr)
	}
	args = append(args, gateArgs()...)
	args = append(args, strings.Fields(c.managerArgs)...)
	logf("starting the manager: %s", strings.Join(args[1:], " "))
	mgr := exec.Command(managerBin, args...)
	logPath := filepath.Join(work, "manager.log")
	if c.managerLog != "" {
		logPath = c.managerLog
	}
	mgrLog, err := os.Create(logPath)
	if err != nil {
		return err
	}
	mgr.Stdout, mgr.Stderr = mgrLog, mgrLog
	if err := mgr.Start(); err != nil {
		return err
	}
	mgrExited := make(chan struct{})
	go func() { _ = mgr.Wait(); close(mgrExited) }()
	defer func() { _ = mgr.Process.Kill(); <-mgrExited }()
	time.Sleep(3 * time.Second) // caches sync before the clock starts

	readyCh, err := startReadyWatch(ctx, unthrottled, c.n)
	if err != nil {
		return err
	}
	gated, err := startGatedPods(ctx, k8s, unthrottled, c.n) // gates.go; nil without -gated-pods
	if err != nil {
		return err
	}
	cpuBefore := controlPlaneCPU()
	before, err := kubeWrites(ctx, clientset)
	if err != nil {
		return err
	}
	logf("creating %d TaskDownloads with ConfigMap targets", c.n)
	if path := os.Getenv("BENCH_APISERVER_PROFILE"); path != "" {
		go profileAPIServer(ctx, clientset, path)
	}
	if path := os.Getenv("BENCH_MANAGER_PROFILE"); path != "" {
		go profileManager(path, "cpu")
	}
	start := time.Now()
	if err := load.Run(c.n, c.floorWorkers, func(i int) error {
		return k8s.Create(ctx, load.TaskDownload(benchNS, "wf", i))
	}); err != nil {
		return err
	}
	if err := waitReady(readyCh, c.n, mgrExited); err != nil {
		return fmt.Errorf("%w (manager log: %s)", err, tail(logPath))
	}
	ready := time.Since(start)
	cpuAfter := controlPlaneCPU()
	logf("CPU seconds while getting Ready: kube-apiserver %.1f, etcd %.1f",
		cpuAfter["kube-apiserver"]-cpuBefore["kube-apiserver"], cpuAfter["etcd"]-cpuBefore["etcd"])
	logf("all %d Ready after %.2fs", c.n, ready.Seconds())
	if err := gated.report(ctx, mgrExited, c.out); err != nil {
		return err
	}
	time.Sleep(time.Second) // let the last status writes and events land in the metrics
	after, err := kubeWrites(ctx, clientset)
	if err != nil {
		return err
	}
	calls := fake.TotalCalls()
	if path := os.Getenv("BENCH_MANAGER_PROFILE"); path != "" {
		profileManager(path+".heap", "heap")
	}
	logf("API server requests while getting Ready (the bench's own included):\n%s", requestsBetween(before, after))

	logf("watching a %s idle period", c.idle)
	time.Sleep(c.idle)
	idleEnd, err := kubeWrites(ctx, clientset)
	if err != nil {
		return err
	}
	rss, cpu, err := procStats(mgr.Process.Pid)
	if err != nil {
		return err
	}

	stateWrites := after.state - before.state - float64(c.n) // minus the bench's own creates
	floor := max(floorKube, floorAPI)
	r := Result{
		N: c.n, ReadyS: round(ready.Seconds(), 2), FloorS: round(floor.Seconds(), 2),
		FloorAPIS: round(floorAPI.Seconds(), 2), FloorKubeS: round(floorKube.Seconds(), 2),
		Ratio:            round(ready.Seconds()/floor.Seconds(), 2),
		FloorSameWorkS:   round(floorSame.Seconds(), 2),
		RatioSameWork:    round(ready.Seconds()/floorSame.Seconds(), 2),
		APICallsPerObj:   round(float64(calls)/float64(c.n), 2),
		KubeWritesPerObj: round(stateWrites/float64(c.n), 2),
		EventsPerObj:     round((after.events-before.events)/float64(c.n), 2),
		KubeReadsPerObj:  round((after.reads-before.reads)/float64(c.n), 2),
		IdleAPICalls:     fake.TotalCalls() - calls,
		IdleKubeWrites:   int(idleEnd.state - after.state + idleEnd.events - after.events),
		RSSMiB:           round(rss, 0), CPUS: round(cpu, 1),
		Pending: c.pending, LatencyMS: c.latency.Milliseconds(), PollInterval: c.poll.String(),
		ManagerArgs: strings.Join(args[1:], " "),
	}
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(c.out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("also: events_per_obj=%.2f kube_reads_per_obj=%.2f floor_api_s=%.2f floor_kube_s=%.2f "+
		"floor_same_work_s=%.2f ratio_same_work=%.2f\n",
		r.EventsPerObj, r.KubeReadsPerObj, r.FloorAPIS, r.FloorKubeS, r.FloorSameWorkS, r.RatioSameWork)
	fmt.Printf("BENCH n=%d ready_s=%.1f floor_s=%.1f ratio=%.2f api_calls_per_obj=%.2f kube_writes_per_obj=%.1f "+
		"idle_api_calls=%d idle_kube_writes=%d rss_mib=%.0f cpu_s=%.1f\n",
		r.N, r.ReadyS, r.FloorS, r.Ratio, r.APICallsPerObj, r.KubeWritesPerObj,
		r.IdleAPICalls, r.IdleKubeWrites, r.RSSMiB, r.CPUS)
	return nil
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

// apiFloor is the least time a task takes on the fake: its pending answers spaced by the poll
// backoff, plus each answer's latency.
func apiFloor(c config) time.Duration {
	d := time.Duration(c.pending+1) * c.latency
	delay := c.poll
	for range c.pending {
		d += min(delay, c.maxPoll)
		delay *= 2
	}
	return d
}

// kubeFloor times the minimum Kubernetes writes for N objects (create, then update twice) from
// unthrottled concurrent workers: what this API server can take.
func kubeFloor(ctx context.Context, k8s client.Client, c config) (time.Duration, error) {
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "floor"}}); err != nil {
		return 0, err
	}
	start := time.Now()
	err := load.Run(c.n, c.floorWorkers, func(i int) error {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "floor", Name: fmt.Sprintf("cm-%d", i)},
			Data:       map[string]string{"STATUS": "pending"},
		}
		if err := k8s.Create(ctx, cm); err != nil {
			return err
		}
		for _, status := range []string{"pending-2", "ready"} {
			cm.Data["STATUS"] = status
			if err := k8s.Update(ctx, cm); err != nil {
				return err
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	return elapsed, k8s.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace("floor"))
}

// sameWorkFloor times the Kubernetes work this operator cannot avoid for N objects, done directly by
// unthrottled workers: create the TaskDownload (as a user would), patch its status twice (pending,
// ready) and create its ConfigMap. TaskDownload status patches cost the API server several times a
// ConfigMap update (schema validation, managed fields), which the ConfigMap floor does not show.
func sameWorkFloor(ctx context.Context, k8s client.Client, c config) (time.Duration, error) {
	const ns = "floor-same-work"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	start := time.Now()
	err := load.Run(c.n, c.floorWorkers, func(i int) error {
		td := load.TaskDownload(ns, "wf", i)
		if err := k8s.Create(ctx, td); err != nil {
			return err
		}
		for _, phase := range []downloadsv1alpha1.Phase{downloadsv1alpha1.PhasePending, downloadsv1alpha1.PhaseReady} {
			before := td.DeepCopy()
			td.Status.Phase, td.Status.ObservedGeneration, td.Status.TaskStatus = phase, 1, string(phase)
			apimeta.SetStatusCondition(&td.Status.Conditions, metav1.Condition{
				Type: downloadsv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: string(phase),
				Message: "same-work floor", ObservedGeneration: 1,
			})
			if err := k8s.Status().Patch(ctx, td, client.MergeFrom(before)); err != nil {
				return err
			}
		}
		return k8s.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: td.Name},
			Data:       map[string]string{"SIGNED_URL": "https://storage.example/x", "STATUS": "ready"},
		})
	})
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	return elapsed, k8s.DeleteAllOf(ctx, &downloadsv1alpha1.TaskDownload{}, client.InNamespace(ns))
}

// startReadyWatch follows TaskDownloads with a watch (not repeated lists, so that the bench takes as
// little as possible from the API server it measures), re-listing only when the server ends the watch,
// and closes the returned channel once n are Ready.
func startReadyWatch(ctx context.Context, cfg *rest.Config, n int) (<-chan struct{}, error) {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	isReady := func(td *downloadsv1alpha1.TaskDownload) bool {
		return apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionReady)
	}
	go func() {
		ready := map[string]bool{}
		for ctx.Err() == nil {
			var list downloadsv1alpha1.TaskDownloadList
			if err := wc.List(ctx, &list, client.InNamespace(benchNS)); err != nil {
				time.Sleep(time.Second)
				continue
			}
			for i := range list.Items {
				if isReady(&list.Items[i]) {
					ready[list.Items[i].Name] = true
				}
			}
			if len(ready) == n {
				close(done)
				return
			}
			w, err := wc.Watch(ctx, &downloadsv1alpha1.TaskDownloadList{}, client.InNamespace(benchNS),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
			if err != nil {
				continue
			}
			for ev := range w.ResultChan() {
				if td, ok := ev.Object.(*downloadsv1alpha1.TaskDownload); ok && isReady(td) {
					ready[td.Name] = true
				}
				if len(ready) == n {
					w.Stop()
					close(done)
					return
				}
			}
			w.Stop()
		}
	}()
	return done, nil
}

func waitReady(done <-chan struct{}, n int, mgrExited <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-mgrExited:
		return errors.New("the manager exited")
	case <-time.After(time.Duration(n)*50*time.Millisecond + 5*time.Minute):
		return fmt.Errorf("not all %d TaskDownloads became Ready in time", n)
	}
}

type writes struct {
	state, events, reads float64
	// all counts every request by verb, resource, subresource and code.
	all map[string]float64
}

// requestsBetween lists the requests made between two readings, most frequent first.
func requestsBetween(before, after writes) string {
	type row struct {
		key string
		n   float64
	}
	var rows []row
	for k, v := range after.all {
		if d := v - before.all[k]; d > 0 {
			rows = append(rows, row{k, d})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.n, a.n) })
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "  %6.0f %s\n", r.n, r.key)
	}
	return sb.String()
}

// kubeWrites reads the API server's request counter: writes to TaskDownloads, ConfigMaps and Secrets
// (state) and to Events, separately.
func kubeWrites(ctx context.Context, cs *kubernetes.Clientset) (writes, error) {
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return writes{}, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return writes{}, err
	}
	var w writes
	f := families["apiserver_request_total"]
	if f == nil {
		return w, errors.New("apiserver_request_total not found")
	}
	w.all = map[string]float64{}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		key := fmt.Sprintf("%s %s/%s %s", labels["verb"], labels["resource"], labels["subresource"], labels["code"])
		w.all[key] += m.GetCounter().GetValue()
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		case "GET":
			if stateResources[labels["resource"]] {
				w.reads += m.GetCounter().GetValue()
			}
			continue
		default:
			continue
		}
		switch {
		case labels["verb"] == "DELETE":
			continue // the floor's clean-up
		case stateResources[labels["resource"]]:
			w.state += m.GetCounter().GetValue()
		case labels["resource"] == "events":
			w.events += m.GetCounter().GetValue()
		}
	}
	return w, nil
}

// controlPlaneCPU returns the CPU seconds used so far by this process's kube-apiserver and etcd
// children, by command name.
func controlPlaneCPU() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != self || (st.name != "kube-apiserver" && st.name != "etcd") {
			continue
		}
		out[st.name] += st.cpuSeconds
	}
	return out
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

// managerPprofAddr serves the manager's pprof profiles when BENCH_MANAGER_PROFILE is set.
const managerPprofAddr = "127.0.0.1:18081"

// profileManager writes a profile of the manager to path: CPU for the 8 s from now, or, with "heap",
// the live heap now.
func profileManager(path, kind string) {
	query := "profile?seconds=8"
	if kind == "heap" {
		query = "heap?gc=1"
	}
	hc := http.Client{Timeout: time.Minute}
	resp, err := hc.Get("http://" + managerPprofAddr + "/debug/pprof/" + query)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	saveProfile("manager", path, raw, err)
}

// profileAPIServer writes a CPU profile of the API server (8 s from now) to path, for `go tool pprof`.
func profileAPIServer(ctx context.Context, cs *kubernetes.Clientset, path string) {
	raw, err := cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "8").
		Timeout(time.Minute).DoRaw(ctx)
	saveProfile("API server", path, raw, err)
}

// saveProfile writes a fetched profile to path, or says why there is none.
func saveProfile(what, path string, raw []byte, err error) {
	if err == nil {
		err = os.WriteFile(path, raw, 0o644)
	}
	if err != nil {
		logf("%s profile: %v", what, err)
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}
