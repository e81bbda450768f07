package schedulinggate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// patchBackoff spaces the attempts to remove gates when the pod changed under the patch.
var patchBackoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 5}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// gatePatch returns a JSON patch removing the gates of the release TaskDownloads from a pod with this UID
// and exactly these gates, and the TaskDownloads whose gates it removes (none: nothing to patch). The
// patch first tests the UID and the whole list, so a pod recreated under the same name, or a gate
// removed by someone else since the pod was read, fails it on the server instead of shifting an index
// onto another controller's gate.
func gatePatch(uid types.UID, gates []corev1.PodSchedulingGate, release []string) ([]byte, []string, error) {
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/uid", Value: uid},
		{Op: "test", Path: "/spec/schedulingGates", Value: gates},
	}
	var removed []string
	for i, g := range slices.Backward(gates) {
		if name, ok := taskDownloadOf(g.Name); ok && slices.Contains(release, name) {
			ops = append(ops, jsonPatchOp{Op: "remove", Path: fmt.Sprintf("/spec/schedulingGates/%d", i)})
			removed = append(removed, name)
		}
	}
	if len(removed) == 0 {
		return nil, nil, nil
	}
	slices.Reverse(removed)
	data, err := json.Marshal(ops)
	return data, removed, err
}

// removeGates removes the gates of the release TaskDownloads from pod, as read from the cache. When the
// patch's tests fail (the cache was behind, or the gates changed), it reads the pod again from the API
// server and retries, a few times, before handing the error back for the workqueue's backoff. It
// returns the TaskDownloads whose gates it removed; none if the pod is gone or no longer carries them.
func (r *Reconciler) removeGates(ctx context.Context, pod *corev1.Pod, release []string) ([]string, error) {
	key := client.ObjectKeyFromObject(pod)
	var removed []string
	cur := pod
	err := retry.OnError(patchBackoff, isStale, func() error {
		removed = nil
		if cur == nil {
			fresh := &corev1.Pod{}
			if err := r.APIReader.Get(ctx, key, fresh); err != nil {
				return err
			}
			cur = fresh
		}
		data, todo, err := gatePatch(cur.UID, cur.Spec.SchedulingGates, release)
		if err != nil || len(todo) == 0 {
			return err
		}
		target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		if err := r.Client.Patch(ctx, target, client.RawPatch(types.JSONPatchType, data)); err != nil {
			cur = nil
			return err
		}
		removed = todo
		return nil
	})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return removed, err
}

// isStale tells a patch that failed because the pod was not as read (a failed JSON patch test is 422
// Invalid; a conflict is possible too) from other errors.
func isStale(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsInvalid(err)
}
