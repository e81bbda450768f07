package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
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
		for _, status := range []string{"pending-2", taskReady} {
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
// ready) and create its ConfigMap, each write holding what the operator's holds (floorWrites), since
// a status patch costs the API server in proportion to the object (schema validation, managed fields,
// encoding). TaskDownload status patches cost the API server several times a ConfigMap update, which
// the ConfigMap floor does not show. The CPU it returns is that of the work alone, not of deleting the
// objects afterwards.
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
		pending, ready, cm := floorWrites(td, time.Now())
		for _, st := range []downloadsv1alpha1.TaskDownloadStatus{pending, ready} {
			before := td.DeepCopy()
			td.Status = st
			if err := k8s.Status().Patch(ctx, td, client.MergeFrom(before)); err != nil {
				return err
			}
		}
		return k8s.Create(ctx, cm)
	})
	elapsed, cpu := time.Since(start), cpuNow().since(cpuStart)
	if err != nil {
		return 0, nil, err
	}
	return elapsed, cpu, deleteAll(ctx, k8s, ns)
}

// taskReady is the platform's status of a ready package.
const taskReady = "ready"

// floorWrites returns what the operator writes for td, as internal/controller's summarize and publish
// write it for a ConfigMap target with one pending answer: the pending status, the ready status and the
// ConfigMap, with a signed URL as long as the fake's.
func floorWrites(td *downloadsv1alpha1.TaskDownload, now time.Time) (
	pending, ready downloadsv1alpha1.TaskDownloadStatus, cm *corev1.ConfigMap) {
	stamp := metav1.NewTime(now)
	task := downloadsv1alpha1.TaskRef{WorkflowID: string(td.Spec.WorkflowID), JobID: string(td.Spec.JobID),
		TaskID: string(td.Spec.TaskID)}
	condition := func(condType string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
		return metav1.Condition{Type: condType, Status: status, Reason: reason, Message: message,
			ObservedGeneration: td.Generation, LastTransitionTime: stamp}
	}
	waiting := `The platform is preparing the package (status "pending")`
	pending = downloadsv1alpha1.TaskDownloadStatus{
		ObservedGeneration: td.Generation, Phase: downloadsv1alpha1.PhasePending, TaskStatus: "pending",
		LastRequestTime: &stamp, PendingSince: &metav1.MicroTime{Time: now},
		Conditions: []metav1.Condition{
			condition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonPending, waiting),
			condition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, downloadsv1alpha1.ReasonPending, waiting),
		},
	}
	url := fakepixxel.SignedURL(fakepixxel.Task{WorkflowID: task.WorkflowID, JobID: task.JobID, TaskID: task.TaskID},
		now, time.Hour)
	expires := metav1.NewTime(now.Add(time.Hour).Truncate(time.Second))
	ready = downloadsv1alpha1.TaskDownloadStatus{
		ObservedGeneration: td.Generation, Phase: downloadsv1alpha1.PhaseReady, TaskStatus: taskReady,
		SignedURL: url, ExpiresAt: &expires, LastRequestTime: &stamp, PublishedTask: &task,
		Conditions: []metav1.Condition{
			condition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued,
				"Signed URL published in ConfigMap "+td.Name+" and status.signedURL"),
		},
	}
	cm = &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: td.Namespace, Name: td.Name,
			Labels: map[string]string{downloadsv1alpha1.LabelManagedBy: downloadsv1alpha1.ManagedByValue,
				downloadsv1alpha1.LabelTaskDownload: td.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(td,
				downloadsv1alpha1.GroupVersion.WithKind("TaskDownload"))},
		},
		Data: map[string]string{
			downloadsv1alpha1.KeySignedURL: url, downloadsv1alpha1.KeyStatus: taskReady,
			downloadsv1alpha1.KeyExpiresAt:  expires.UTC().Format(time.RFC3339),
			downloadsv1alpha1.KeyWorkflowID: task.WorkflowID, downloadsv1alpha1.KeyJobID: task.JobID,
			downloadsv1alpha1.KeyTaskID: task.TaskID,
		},
	}
	return pending, ready, cm
}

// deleteAll deletes the floor's TaskDownloads and ConfigMaps before the manager starts: it would
// reconcile the TaskDownloads, and cache the ConfigMaps (they carry its label) and reconcile their
// owners; envtest has no garbage collector to delete them with their owners. A collection delete of
// 10,000 objects can outlast the API server's request timeout while the server goes on deleting;
// then wait until none is left.
func deleteAll(ctx context.Context, k8s client.Client, ns string) error {
	for _, kind := range []struct {
		obj  client.Object
		list client.ObjectList
	}{
		{&downloadsv1alpha1.TaskDownload{}, &downloadsv1alpha1.TaskDownloadList{}},
		{&corev1.ConfigMap{}, &corev1.ConfigMapList{}},
	} {
		err := k8s.DeleteAllOf(ctx, kind.obj, client.InNamespace(ns))
		if err == nil {
			continue
		}
		if !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
			return err
		}
		logf("deleting the same-work floor's %T takes longer than a request may; waiting", kind.obj)
		gone := func(ctx context.Context) (bool, error) {
			if err := k8s.List(ctx, kind.list, client.InNamespace(ns), client.Limit(1)); err != nil {
				return false, nil //nolint:nilerr // a busy server: ask again
			}
			return meta.LenList(kind.list) == 0, nil
		}
		if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, gone); err != nil {
			return err
		}
	}
	return nil
}

// compareFloorWrites logs the size of what the operator wrote for one object next to what the
// same-work floor writes for it, so that a floor drifting from the operator's writes shows.
func compareFloorWrites(ctx context.Context, k8s client.Client) {
	td := load.TaskDownload(benchNS, "wf", 0)
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(td), td); err != nil {
		logf("comparing with the floor's writes: %v", err)
		return
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(td), cm); err != nil {
		logf("comparing with the floor's writes: %v", err)
		return
	}
	_, ready, floorCM := floorWrites(td, time.Now())
	size := func(v any) int { data, _ := json.Marshal(v); return len(data) }
	logf("bytes written, operator vs same-work floor: ready status %d vs %d, ConfigMap data %d vs %d",
		size(td.Status), size(ready), size(cm.Data), size(floorCM.Data))
}
