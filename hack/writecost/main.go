// Command writecost times each kind of Kubernetes write the operator's work consists of, on a real
// kube-apiserver + etcd (envtest): N of each from 16 unthrottled workers, nothing else running. It shows
// why `make bench`'s ratio against a ConfigMap-only floor cannot reach 2.0 (see docs/benchmarks.md).
//
//	go run ./hack/writecost -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

func main() {
	n := flag.Int("n", 1000, "writes of each kind")
	writers := flag.Int("workers", 16, "concurrent writers")
	rounds := flag.Int("rounds", 2, "times to repeat the series (the first warms the API server up)")
	flag.Parse()
	if err := run(*n, *writers, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "writecost:", err)
		os.Exit(1)
	}
}

func run(n, writers, rounds int) error {
	ctx := context.Background()
	env, cfg, err := envtestutil.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	k8s, err := client.New(envtestutil.Unthrottled(cfg), client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return err
	}
	m := &meter{ctx: ctx, k8s: k8s, n: n, writers: writers}
	for round := 1; round <= rounds; round++ {
		fmt.Printf("round %d: %d writes of each kind from %d workers\n", round, n, writers)
		for _, w := range writeKinds(ctx, k8s, n) {
			if err := m.measure(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeKind is one kind of write the operator makes, as the i-th of n in namespace ns.
type writeKind struct {
	name  string
	write func(ns string, i int) error
}

// writeKinds are the writes measured, in order: an update or a patch acts on what the create before it
// made, so each round starts with fresh objects.
func writeKinds(ctx context.Context, k8s client.Client, n int) []writeKind {
	cms := make([]*corev1.ConfigMap, n)
	tds := make([]*downloadsv1alpha1.TaskDownload, n)
	return []writeKind{
		{"ConfigMap create", func(ns string, i int) error {
			cms[i] = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)},
				Data:       map[string]string{"STATUS": "pending"},
			}
			return k8s.Create(ctx, cms[i])
		}},
		{"ConfigMap update", func(_ string, i int) error {
			cms[i].Data["STATUS"] = "ready"
			return k8s.Update(ctx, cms[i])
		}},
		{"TaskDownload create", func(ns string, i int) error {
			tds[i] = load.TaskDownload(ns, "wf", i)
			return k8s.Create(ctx, tds[i])
		}},
		{"TaskDownload status merge patch", func(_ string, i int) error {
			td := tds[i]
			before := td.DeepCopy()
			td.Status.Phase, td.Status.ObservedGeneration, td.Status.TaskStatus = downloadsv1alpha1.PhasePending, 1, "pending"
			apimeta.SetStatusCondition(&td.Status.Conditions, metav1.Condition{
				Type: downloadsv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Pending",
				Message: "The platform is preparing the package", ObservedGeneration: 1,
			})
			return k8s.Status().Patch(ctx, td, client.MergeFrom(before))
		}},
		{"Event create (events.k8s.io/v1)", func(ns string, i int) error {
			return k8s.Create(ctx, &eventsv1.Event{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("td-%d.issued", i)},
				EventTime:  metav1.NowMicro(), ReportingController: "writecost", ReportingInstance: "writecost-1",
				Action: "Publish", Reason: "URLIssued", Type: corev1.EventTypeNormal, Note: "Signed URL published",
				Regarding: corev1.ObjectReference{Kind: "TaskDownload", Namespace: ns, Name: fmt.Sprintf("td-%d", i)},
			})
		}},
	}
}

// meter times n writes of one kind from its workers, each kind in a namespace of its own.
type meter struct {
	ctx        context.Context
	k8s        client.Client
	n, writers int
	namespaces int
}

func (m *meter) measure(w writeKind) error {
	m.namespaces++
	ns := fmt.Sprintf("writecost-%d", m.namespaces)
	if err := m.k8s.Create(m.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	start := time.Now()
	if err := load.Run(m.n, m.writers, func(i int) error { return w.write(ns, i) }); err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	elapsed := time.Since(start)
	fmt.Printf("%-34s %6.2fs  %5.2f ms/write\n", w.name, elapsed.Seconds(),
		float64(elapsed.Microseconds())/1000/float64(m.n))
	return nil
}
