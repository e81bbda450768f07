package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

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
// ConfigMap update (schema validation, managed fields), which the ConfigMap floor does not show. The
// CPU it returns is that of the work alone, not of deleting the objects afterwards.
func sameWorkFloor(ctx context.Context, k8s client.Client, c config) (time.Duration, cpuUse, error) {
	const ns = "floor-same-work"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, nil, err
	}
	cpuStart, start := cpuNow(), time.Now()
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
	elapsed, cpu := time.Since(start), cpuNow().since(cpuStart)
	if err != nil {
		return 0, nil, err
	}
	return elapsed, cpu, deleteAll(ctx, k8s, ns)
}

// deleteAll deletes the floor's TaskDownloads before the manager starts (it would reconcile them). A
// collection delete of 10,000 custom resources can outlast the API server's request timeout while the
// server goes on deleting; then wait until none is left.
func deleteAll(ctx context.Context, k8s client.Client, ns string) error {
	err := k8s.DeleteAllOf(ctx, &downloadsv1alpha1.TaskDownload{}, client.InNamespace(ns))
	if err == nil || !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
		return err
	}
	logf("deleting the same-work floor's TaskDownloads takes longer than a request may; waiting")
	return wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var left downloadsv1alpha1.TaskDownloadList
		if err := k8s.List(ctx, &left, client.InNamespace(ns), client.Limit(1)); err != nil {
			return false, nil //nolint:nilerr // a busy server: ask again
		}
		return len(left.Items) == 0, nil
	})
}
