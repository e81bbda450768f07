package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
)

// latencyReport is bench-latency.json.
type latencyReport struct {
	PollInterval    string          `json:"poll_interval"`
	MaxPollInterval string          `json:"max_poll_interval"`
	LatencyMS       int64           `json:"latency_ms"`
	PerWait         int             `json:"per_wait"`
	ManagerArgs     string          `json:"manager_args"`
	Waits           []latencyResult `json:"waits"`
}

// latencyResult is one ready-after time T's figures. Late is the time from T after a task's first call
// (when the fake starts answering ready) until the bench sees its TaskDownload Ready.
type latencyResult struct {
	TS          float64 `json:"t_s"`
	LateP50Pct  float64 `json:"late_p50_pct"`
	LateP95Pct  float64 `json:"late_p95_pct"`
	LateMaxPct  float64 `json:"late_max_pct"`
	LateP50S    float64 `json:"late_p50_s"`
	LateP95S    float64 `json:"late_p95_s"`
	CallsPerObj float64 `json:"calls_per_obj"`
	// Late splits in two: the schedule's share, from T until the platform's ready answer was sent
	// (the poll's phase plus the fake's latency), and Kubernetes' share, from that answer until the
	// bench saw the TaskDownload Ready (the target write, the status patch and the watch).
	NoticeP50Pct float64 `json:"notice_p50_pct"`
	NoticeP95Pct float64 `json:"notice_p95_pct"`
	PublishP50S  float64 `json:"publish_p50_s"`
	PublishP95S  float64 `json:"publish_p95_s"`
}

// runLatency measures, for each -ready-after time T in turn, how promptly -per-wait TaskDownloads are
// seen Ready when their tasks become ready T after their first call. The T's run one after the other on
// one manager so that each is measured alone.
func runLatency(c config, managerBin, work string) error {
	ctx := context.Background()
	cl, err := startCluster(work)
	if err != nil {
		return err
	}
	defer cl.stop()
	fake := fakepixxel.New()
	defer fake.Close()
	fake.SetLatency(c.latency)
	fake.KeepRequests(false)

	args := managerArgs(c, cl.kubeconfig, fake.URL)
	mgr, err := launchManager(c, managerBin, work, args)
	if err != nil {
		return err
	}
	defer mgr.Kill()

	report := latencyReport{
		PollInterval: c.poll.String(), MaxPollInterval: c.maxPoll.String(), LatencyMS: c.latency.Milliseconds(),
		PerWait: c.perWait, ManagerArgs: strings.Join(args[1:], " "),
	}
	for _, wait := range c.waits {
		r, err := measureWait(ctx, c, cl, fake, mgr, wait)
		if err != nil {
			return fmt.Errorf("ready after %s: %w", wait, err)
		}
		report.Waits = append(report.Waits, r)
	}
	data, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(c.out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	for _, r := range report.Waits {
		fmt.Printf("LATENCY t_s=%g late_p50_pct=%.1f late_p95_pct=%.1f calls_per_obj=%.1f\n",
			r.TS, r.LateP50Pct, r.LateP95Pct, r.CallsPerObj)
	}
	return nil
}

// measureWait creates c.perWait TaskDownloads in a namespace of their own whose tasks become ready wait
// after their first call, and measures how late each is seen Ready.
func measureWait(ctx context.Context, c config, cl *cluster, fake *fakepixxel.Server, mgr *managerproc.Process,
	wait time.Duration) (latencyResult, error) {
	ns := "latency-" + strings.ReplaceAll(wait.String(), ".", "-")
	if err := load.Namespace(ctx, cl.k8s, ns, "bench-key"); err != nil {
		return latencyResult{}, err
	}
	fake.SetReadyAfter(wait)
	var mu sync.Mutex
	readyAt := map[string]time.Time{}
	done, err := watchReady(ctx, cl.cfg, ns, c.perWait, func(name string, at time.Time) {
		mu.Lock()
		readyAt[name] = at
		mu.Unlock()
	})
	if err != nil {
		return latencyResult{}, err
	}
	logf("ready after %s: creating %d TaskDownloads in %s", wait, c.perWait, ns)
	// The workflow is the namespace: tasks of different waits must be different tasks on the fake.
	if err := load.Run(c.perWait, c.floorWorkers, func(i int) error {
		return cl.k8s.Create(ctx, load.TaskDownload(ns, ns, i))
	}); err != nil {
		return latencyResult{}, err
	}
	if err := waitReady(done, mgr, c.perWait, 3*wait+2*time.Minute); err != nil {
		return latencyResult{}, err
	}

	mu.Lock()
	defer mu.Unlock()
	d, err := collectDelays(c, fake, ns, wait, readyAt)
	if err != nil {
		return latencyResult{}, err
	}
	return d.figures(c, wait), nil
}

// delays are, for each TaskDownload of one wait, how late it was seen Ready after T (late), and the
// two parts of that: until the fake answered ready (notice), and from then until Ready (publish).
// Each is sorted.
type delays struct {
	late, notice, publish []time.Duration
	calls                 int
}

// collectDelays reads, for each TaskDownload of ns, when the fake first answered its task and first
// answered it ready, and readyAt, when the bench saw it Ready.
func collectDelays(c config, fake *fakepixxel.Server, ns string, wait time.Duration,
	readyAt map[string]time.Time) (delays, error) {
	late := make([]time.Duration, 0, c.perWait)
	notice := make([]time.Duration, 0, c.perWait)
	publish := make([]time.Duration, 0, c.perWait)
	calls := 0
	for i := range c.perWait {
		td := load.TaskDownload(ns, ns, i)
		task := fakepixxel.Task{WorkflowID: string(td.Spec.WorkflowID), JobID: string(td.Spec.JobID),
			TaskID: string(td.Spec.TaskID)}
		first, ok := fake.FirstCall(task)
		if !ok {
			return delays{}, fmt.Errorf("%s/%s is Ready but its task was never answered", ns, td.Name)
		}
		answered, ok := fake.FirstReady(task)
		if !ok {
			return delays{}, fmt.Errorf("%s/%s is Ready but its task never answered ready", ns, td.Name)
		}
		late = append(late, readyAt[td.Name].Sub(first)-wait)
		notice = append(notice, answered.Sub(first)-wait)
		publish = append(publish, readyAt[td.Name].Sub(answered))
		calls += fake.Calls(task)
	}
	for _, d := range [][]time.Duration{late, notice, publish} {
		slices.Sort(d)
	}
	return delays{late: late, notice: notice, publish: publish, calls: calls}, nil
}

// figures summarises the delays of one wait, as shares of it, and logs them.
func (d delays) figures(c config, wait time.Duration) latencyResult {
	pct := func(t time.Duration) float64 { return round(100*t.Seconds()/wait.Seconds(), 1) }
	p50, p95 := percentile(d.late, 50), percentile(d.late, 95)
	r := latencyResult{
		TS: wait.Seconds(), LateP50Pct: pct(p50), LateP95Pct: pct(p95), LateMaxPct: pct(d.late[len(d.late)-1]),
		LateP50S: round(p50.Seconds(), 3), LateP95S: round(p95.Seconds(), 3),
		CallsPerObj:  round(float64(d.calls)/float64(c.perWait), 1),
		NoticeP50Pct: pct(percentile(d.notice, 50)), NoticeP95Pct: pct(percentile(d.notice, 95)),
		PublishP50S: round(percentile(d.publish, 50).Seconds(), 3),
		PublishP95S: round(percentile(d.publish, 95).Seconds(), 3),
	}
	logf("ready after %s: late p50 %s (%.1f%%), p95 %s (%.1f%%), max %.1f%%, %.1f calls per object; "+
		"of which noticed p50 %.1f%% p95 %.1f%% after T, published p50 %.3fs p95 %.3fs after the answer",
		wait, p50.Round(time.Millisecond), r.LateP50Pct, p95.Round(time.Millisecond), r.LateP95Pct, r.LateMaxPct,
		r.CallsPerObj, r.NoticeP50Pct, r.NoticeP95Pct, r.PublishP50S, r.PublishP95S)
	return r
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// durations is a flag holding a comma-separated list of durations.
type durations []time.Duration

func (d *durations) String() string {
	parts := make([]string, len(*d))
	for i, v := range *d {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

func (d *durations) Set(s string) error {
	var out durations
	for part := range strings.SplitSeq(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		if v <= 0 {
			return fmt.Errorf("%s: want a positive duration", part)
		}
		out = append(out, v)
	}
	*d = out
	return nil
}
