package main

// The scheduling-gate part of the bench: with -gated-pods, pods waiting on the gate of the measured
// TaskDownloads are created before them, and the bench reports how long after each TaskDownload was
// seen Ready its pods were seen released, and what releasing them cost in Kubernetes requests. Compare
// api_calls_per_obj with a run without -gated-pods: gated pods must not add platform calls.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/schedulinggate"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

var gatedPods = flag.Int("gated-pods", 0,
	"pods created gated before the TaskDownloads, pod i on td-<i mod n>; the manager runs with "+
		"--enable-scheduling-gates and the bench reports how long after Ready each gate goes (0: off)")

// gateArgs returns the manager flags the gate measurement needs.
func gateArgs() []string {
	if *gatedPods <= 0 {
		return nil
	}
	return []string{"--enable-scheduling-gates"}
}

// gateRun watches the gated pods and the TaskDownloads they wait for. A nil *gateRun is a run without
// gated pods: its methods do nothing.
type gateRun struct {
	pods       int
	clientset  *kubernetes.Clientset
	before     writes
	stopWatch  context.CancelFunc
	mu         sync.Mutex
	readyAt    map[string]time.Time // TaskDownload name -> when the bench first saw it Ready
	releasedAt map[string]time.Time // pod name -> when the bench first saw it without its gate
	waitsOn    map[string]string    // pod name -> TaskDownload name
	released   chan struct{}        // closed when every pod is released
}

// startGatedPods creates the gated pods (if -gated-pods is set) and starts watching them and the
// TaskDownloads of a run of n.
func startGatedPods(ctx context.Context, k8s client.Client, cfg *rest.Config, n int) (*gateRun, error) {
	if *gatedPods <= 0 {
		return nil, nil
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	g := &gateRun{
		pods: *gatedPods, clientset: cs,
		readyAt: map[string]time.Time{}, releasedAt: map[string]time.Time{}, waitsOn: map[string]string{},
		released: make(chan struct{}),
	}
	if err := g.watch(ctx, cfg); err != nil {
		return nil, err
	}
	logf("creating %d pods gated on the TaskDownloads to come", g.pods)
	for i := range g.pods {
		g.waitsOn[fmt.Sprintf("gated-%d", i)] = fmt.Sprintf("td-%d", i%n)
	}
	if g.before, err = kubeWrites(ctx, cs); err != nil {
		return nil, err
	}
	err = load.Run(g.pods, 16, func(i int) error {
		return k8s.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: fmt.Sprintf("gated-%d", i)},
			Spec: corev1.PodSpec{
				SchedulingGates: []corev1.PodSchedulingGate{
					{Name: "example.com/stays"}, {Name: schedulinggate.GateName(fmt.Sprintf("td-%d", i%n))},
				},
				Containers: []corev1.Container{{Name: "main", Image: "busybox:1.37"}},
			},
		})
	})
	return g, err
}

// watch records when each TaskDownload is first seen Ready and each pod first seen without our gate,
// through informers, which list again after a dropped watch.
func (g *gateRun) watch(ctx context.Context, cfg *rest.Config) error {
	c, err := cache.New(cfg, cache.Options{
		Scheme:            manager.NewScheme(),
		DefaultNamespaces: map[string]cache.Config{benchNS: {}},
	})
	if err != nil {
		return err
	}
	ctx, g.stopWatch = context.WithCancel(ctx)
	record := func(obj any) {
		now := time.Now()
		g.mu.Lock()
		defer g.mu.Unlock()
		switch o := obj.(type) {
		case *downloadsv1alpha1.TaskDownload:
			if _, seen := g.readyAt[o.Name]; !seen &&
				apimeta.IsStatusConditionTrue(o.Status.Conditions, downloadsv1alpha1.ConditionReady) {
				g.readyAt[o.Name] = now
			}
		case *corev1.Pod:
			if _, seen := g.releasedAt[o.Name]; seen || len(o.Spec.SchedulingGates) != 1 {
				return
			}
			if o.Spec.SchedulingGates[0].Name != "example.com/stays" {
				// Never expected: the operator removed the wrong gate. Recorded as "not released".
				return
			}
			g.releasedAt[o.Name] = now
			if len(g.releasedAt) == g.pods {
				close(g.released)
			}
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj any) { record(obj) },
	}
	for _, obj := range []client.Object{&downloadsv1alpha1.TaskDownload{}, &corev1.Pod{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return errors.New("the bench's pod cache did not sync")
	}
	return nil
}

// GateResult is the gate measurement's summary.
type GateResult struct {
	Pods int `json:"pods"`
	// ReleaseP50MS, P95 and Max: from a TaskDownload seen Ready to its pod seen released.
	ReleaseP50MS float64 `json:"release_p50_ms"`
	ReleaseP95MS float64 `json:"release_p95_ms"`
	ReleaseMaxMS float64 `json:"release_max_ms"`
	// PodPatchesPerPod counts PATCH requests on pods (1.0: one patch per pod, no retries).
	PodPatchesPerPod float64 `json:"pod_patches_per_pod"`
	// EventsPerPod counts every event written while the pods waited and were released.
	EventsPerPod float64 `json:"events_per_pod"`
}

// report waits until every pod is released (or the manager exits, or a deadline passes), prints the
// summary line GATES ... and writes it as JSON next to the bench's result (bench-result-gates.json).
func (g *gateRun) report(ctx context.Context, mgrExited <-chan struct{}, out string) error {
	if g == nil {
		return nil
	}
	r, err := g.measure(ctx, mgrExited)
	if err != nil {
		return err
	}
	fmt.Printf("GATES pods=%d release_p50_ms=%.1f release_p95_ms=%.1f release_max_ms=%.1f "+
		"pod_patches_per_pod=%.2f events_per_pod=%.2f\n",
		r.Pods, r.ReleaseP50MS, r.ReleaseP95MS, r.ReleaseMaxMS, r.PodPatchesPerPod, r.EventsPerPod)
	data, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(strings.TrimSuffix(out, ".json")+"-gates.json", append(data, '\n'), 0o644)
}

func (g *gateRun) measure(ctx context.Context, mgrExited <-chan struct{}) (*GateResult, error) {
	defer g.stopWatch()
	select {
	case <-g.released:
	case <-mgrExited:
		return nil, errors.New("the manager exited before every gated pod was released")
	case <-time.After(2 * time.Minute):
		g.mu.Lock()
		n := len(g.releasedAt)
		g.mu.Unlock()
		return nil, fmt.Errorf("%d of %d gated pods released after 2 minutes past Ready", n, g.pods)
	}
	time.Sleep(time.Second) // let the last events land in the metrics
	after, err := kubeWrites(ctx, g.clientset)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	lat := make([]float64, 0, g.pods)
	for pod, at := range g.releasedAt {
		ready, ok := g.readyAt[g.waitsOn[pod]]
		if !ok {
			return nil, fmt.Errorf("pod %s released before the bench saw %s Ready", pod, g.waitsOn[pod])
		}
		lat = append(lat, float64(at.Sub(ready).Microseconds())/1000)
	}
	slices.Sort(lat)
	patches := 0.0
	for k, v := range after.all {
		if strings.HasPrefix(k, "PATCH pods/") {
			patches += v - g.before.all[k]
		}
	}
	r := &GateResult{
		Pods:             g.pods,
		ReleaseP50MS:     round(quantile(lat, 0.50), 1),
		ReleaseP95MS:     round(quantile(lat, 0.95), 1),
		ReleaseMaxMS:     round(lat[len(lat)-1], 1),
		PodPatchesPerPod: round(patches/float64(g.pods), 2),
		EventsPerPod:     round((after.events-g.before.events)/float64(g.pods), 2),
	}
	return r, nil
}

// quantile reads the q-quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
