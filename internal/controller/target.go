package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// publication is what a target object holds, and the task it is for.
type publication struct {
	signedURL  string
	taskStatus string
	expiresAt  *metav1.Time
	task       downloadsv1alpha1.TaskRef
	// obtainedAt is when the platform handed the URL out, as status.lastRequestTime records it.
	obtainedAt time.Time
}

// targetData renders a publication as the documented keys.
func targetData(td *downloadsv1alpha1.TaskDownload, p publication) map[string]string {
	expires := ""
	if p.expiresAt != nil {
		expires = p.expiresAt.UTC().Format(time.RFC3339)
	}
	return map[string]string{
		downloadsv1alpha1.KeySignedURL:  p.signedURL,
		downloadsv1alpha1.KeyStatus:     p.taskStatus,
		downloadsv1alpha1.KeyExpiresAt:  expires,
		downloadsv1alpha1.KeyWorkflowID: string(td.Spec.WorkflowID),
		downloadsv1alpha1.KeyJobID:      string(td.Spec.JobID),
		downloadsv1alpha1.KeyTaskID:     string(td.Spec.TaskID),
	}
}

// The target is read three ways: its metadata from the manager's cache (cachedTargetMetadata), which
// holds only the objects labelled as the operator's; whole from the API server when the cache knows it
// (getTarget); and whole from the API server whatever the cache says (readTarget).

// cachedTargetMetadata reads the TaskDownload's target from the cache. A miss means absent or not
// ours: writeTarget's create tells which.
func (r *TaskDownloadReconciler) cachedTargetMetadata(ctx context.Context, td *downloadsv1alpha1.TaskDownload,
	ref target.Ref) (*metav1.PartialObjectMetadata, error) {
	meta := target.Metadata(ref.Kind)
	err := r.Get(ctx, ref.NamespacedName, meta)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if !metav1.IsControlledBy(meta, td) {
		return nil, targetConflict(ref)
	}
	return meta, nil
}

// getTarget reads the TaskDownload's target whole, data included, from the API server: the cache holds
// metadata only. It is nil when the cache knows no target of ours.
func (r *TaskDownloadReconciler) getTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload,
	ref target.Ref) (client.Object, error) {
	meta, err := r.cachedTargetMetadata(ctx, td, ref)
	if meta == nil || err != nil {
		return nil, err
	}
	return absentAsNil(r.readTarget(ctx, td, ref))
}

// readTarget reads the TaskDownload's target whole from the API server, whatever the cache says: an
// object the cache does not know yet (the operator's own create), or one it cannot know (not
// labelled). An object this TaskDownload does not control is a conflict.
func (r *TaskDownloadReconciler) readTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload,
	ref target.Ref) (client.Object, error) {
	obj := ref.Kind.New()
	if err := r.APIReader.Get(ctx, ref.NamespacedName, obj); err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	if !metav1.IsControlledBy(obj, td) {
		return nil, targetConflict(ref)
	}
	return obj, nil
}

// absentAsNil turns the read of an object that does not exist into no object and no error.
func absentAsNil(obj client.Object, err error) (client.Object, error) {
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// targetInSync tells whether the existing target, of kind k, already holds what would be published.
// For a target whose URL is not in status (a Secret) the URL itself is not known, so any non-empty URL
// counts.
func targetInSync(td *downloadsv1alpha1.TaskDownload, k target.Kind, existing client.Object, p publication) bool {
	if existing == nil {
		return false
	}
	got := k.Data(existing)
	want := targetData(td, p)
	if p.signedURL == "" {
		if got[downloadsv1alpha1.KeySignedURL] == "" {
			return false
		}
		want[downloadsv1alpha1.KeySignedURL] = got[downloadsv1alpha1.KeySignedURL]
	}
	return maps.Equal(got, want)
}

// writeTarget creates the target, or updates the one this TaskDownload controls, to hold p. It writes
// nothing when the target already holds p.
func (r *TaskDownloadReconciler) writeTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload, ref target.Ref,
	existing client.Object, p publication) error {
	data := targetData(td, p)
	if existing == nil {
		created, err := r.createTarget(ctx, td, ref, data)
		if created || err != nil {
			return err
		}
		// It exists but is not in the cache: someone else's, or ours without its label.
		if existing, err = r.readTarget(ctx, td, ref); err != nil {
			return err
		}
	}
	owned := existing.GetLabels()[downloadsv1alpha1.LabelManagedBy] == downloadsv1alpha1.ManagedByValue
	if maps.Equal(ref.Kind.Data(existing), data) && owned {
		r.written.record(client.ObjectKeyFromObject(td), ref, existing.GetResourceVersion(), data)
		return nil
	}
	patch := client.MergeFromWithOptions(existing.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	ref.Kind.SetData(existing, data)
	existing.SetLabels(targetLabels(td, existing.GetLabels()))
	if err := r.Patch(ctx, existing, patch); err != nil {
		return fmt.Errorf("updating %s: %w", ref, err)
	}
	r.written.record(client.ObjectKeyFromObject(td), ref, existing.GetResourceVersion(), data)
	return nil
}

// createTarget creates the target holding data; created is false when an object of that name exists.
func (r *TaskDownloadReconciler) createTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload, ref target.Ref,
	data map[string]string) (created bool, err error) {
	obj := ref.Kind.New()
	obj.SetName(ref.Name)
	obj.SetNamespace(ref.Namespace)
	obj.SetLabels(targetLabels(td, nil))
	ref.Kind.SetData(obj, data)
	if err := controllerutil.SetControllerReference(td, obj, r.Scheme); err != nil {
		return false, err
	}
	err = r.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", ref, err)
	}
	r.written.record(client.ObjectKeyFromObject(td), ref, obj.GetResourceVersion(), data)
	return true, nil
}

// targetLabels are a target's labels with the operator's two set: managed-by, which the manager's cache
// selects on, and the TaskDownload's name, which publishedForIndex indexes.
func targetLabels(td *downloadsv1alpha1.TaskDownload, existing map[string]string) map[string]string {
	out := maps.Clone(existing)
	if out == nil {
		out = map[string]string{}
	}
	out[downloadsv1alpha1.LabelManagedBy], out[downloadsv1alpha1.LabelTaskDownload] = downloadsv1alpha1.ManagedByValue, td.Name
	return out
}

// pruneTargets deletes objects this TaskDownload published to earlier but no longer names (after
// spec.target changed or was removed).
func (r *TaskDownloadReconciler) pruneTargets(ctx context.Context, td *downloadsv1alpha1.TaskDownload) error {
	current, hasTarget := target.Of(td)
	sel := client.MatchingFields{publishedForIndex: td.Name}
	for _, k := range target.Kinds() {
		list := target.MetadataList(k)
		if err := r.List(ctx, list, client.InNamespace(td.Namespace), sel); err != nil {
			return err
		}
		for i := range list.Items {
			obj := &list.Items[i]
			stillNamed := hasTarget && current.Kind.TargetKind() == k.TargetKind() && obj.GetName() == current.Name
			if !metav1.IsControlledBy(obj, td) || stillNamed {
				continue
			}
			if err := r.Delete(ctx, obj, client.Preconditions{UID: new(obj.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting stale %s %s: %w", k.TargetKind(), obj.GetName(), err)
			}
		}
	}
	return nil
}

// describeTarget names where the URL is published, for messages.
func describeTarget(td *downloadsv1alpha1.TaskDownload) string {
	ref, ok := target.Of(td)
	switch {
	case !ok:
		return "status.signedURL"
	case ref.Kind.URLInStatus():
		return ref.String() + " and status.signedURL"
	}
	return ref.String()
}
