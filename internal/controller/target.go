package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// publication is what a target object holds, and the task it is for.
type publication struct {
	signedURL  string
	taskStatus string
	expiresAt  *metav1.Time
	task       downloadsv1alpha1.TaskRef
}

// targetKey returns the kind and name of the object the TaskDownload publishes to, if any.
func targetKey(td *downloadsv1alpha1.TaskDownload) (downloadsv1alpha1.TargetKind, types.NamespacedName, bool) {
	t := td.Spec.Target
	if t == nil {
		return "", types.NamespacedName{}, false
	}
	kind := t.Kind
	if kind == "" {
		kind = downloadsv1alpha1.TargetConfigMap
	}
	name := t.Name
	if name == "" {
		name = td.Name
	}
	return kind, types.NamespacedName{Namespace: td.Namespace, Name: name}, true
}

func newTargetObject(kind downloadsv1alpha1.TargetKind) client.Object {
	if kind == downloadsv1alpha1.TargetSecret {
		return &corev1.Secret{}
	}
	return &corev1.ConfigMap{}
}

// targetMetadata is an empty target of this kind as the manager's cache holds it: metadata only.
func targetMetadata(kind downloadsv1alpha1.TargetKind) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(string(kind)))
	return m
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

// readData returns an existing target's keys as strings.
func readData(obj client.Object) map[string]string {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return o.Data
	case *corev1.Secret:
		out := make(map[string]string, len(o.Data))
		for k, v := range o.Data {
			out[k] = string(v)
		}
		return out
	}
	return nil
}

func writeData(obj client.Object, data map[string]string) {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		o.Data = maps.Clone(data)
	case *corev1.Secret:
		o.Type = corev1.SecretTypeOpaque
		o.Data = make(map[string][]byte, len(data))
		for k, v := range data {
			o.Data[k] = []byte(v)
		}
	}
}

// getTargetMetadata reads the TaskDownload's target from the cache, which holds only the metadata of
// the objects labelled as the operator's. A miss means absent or not ours: writeTarget's create tells
// which.
func (r *TaskDownloadReconciler) getTargetMetadata(ctx context.Context,
	td *downloadsv1alpha1.TaskDownload) (*metav1.PartialObjectMetadata, error) {
	kind, key, ok := targetKey(td)
	if !ok {
		return nil, nil
	}
	meta := targetMetadata(kind)
	err := r.Get(ctx, key, meta)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", kind, key.Name, err)
	}
	if !metav1.IsControlledBy(meta, td) {
		return nil, targetConflict(kind, key.Name)
	}
	return meta, nil
}

// getTarget reads the TaskDownload's target whole, data included, from the API server: the cache holds
// metadata only. It is nil when the cache knows no target of ours.
func (r *TaskDownloadReconciler) getTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload) (client.Object, error) {
	meta, err := r.getTargetMetadata(ctx, td)
	if meta == nil || err != nil {
		return nil, err
	}
	kind, key, _ := targetKey(td)
	obj := newTargetObject(kind)
	if err := r.APIReader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s %s: %w", kind, key.Name, err)
	}
	if !metav1.IsControlledBy(obj, td) {
		return nil, targetConflict(kind, key.Name)
	}
	return obj, nil
}

// targetInSync tells whether the existing target already holds what would be published. For a Secret
// target the URL itself is not known from status, so any non-empty URL counts.
func targetInSync(td *downloadsv1alpha1.TaskDownload, existing client.Object, p publication) bool {
	if existing == nil {
		return false
	}
	got := readData(existing)
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
func (r *TaskDownloadReconciler) writeTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload,
	existing client.Object, p publication) error {
	kind, key, _ := targetKey(td)
	data := targetData(td, p)
	if existing == nil {
		obj := newTargetObject(kind)
		obj.SetName(key.Name)
		obj.SetNamespace(key.Namespace)
		obj.SetLabels(map[string]string{downloadsv1alpha1.LabelManagedBy: downloadsv1alpha1.ManagedByValue, downloadsv1alpha1.LabelTaskDownload: td.Name})
		writeData(obj, data)
		if err := controllerutil.SetControllerReference(td, obj, r.Scheme); err != nil {
			return err
		}
		err := r.Create(ctx, obj)
		if err == nil {
			r.written.record(client.ObjectKeyFromObject(td), kind, key, obj.GetResourceVersion(), data)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", kind, key.Name, err)
		}
		// It exists but is not in the cache: someone else's, or ours without its label.
		existing = newTargetObject(kind)
		if err := r.APIReader.Get(ctx, key, existing); err != nil {
			return fmt.Errorf("reading %s %s: %w", kind, key.Name, err)
		}
		if !metav1.IsControlledBy(existing, td) {
			return targetConflict(kind, key.Name)
		}
	}
	if maps.Equal(readData(existing), data) && existing.GetLabels()[downloadsv1alpha1.LabelManagedBy] == downloadsv1alpha1.ManagedByValue {
		r.written.record(client.ObjectKeyFromObject(td), kind, key, existing.GetResourceVersion(), data)
		return nil
	}
	patch := client.MergeFromWithOptions(existing.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	writeData(existing, data)
	objLabels := existing.GetLabels()
	if objLabels == nil {
		objLabels = map[string]string{}
	}
	objLabels[downloadsv1alpha1.LabelManagedBy], objLabels[downloadsv1alpha1.LabelTaskDownload] = downloadsv1alpha1.ManagedByValue, td.Name
	existing.SetLabels(objLabels)
	if err := r.Patch(ctx, existing, patch); err != nil {
		return fmt.Errorf("updating %s %s: %w", kind, key.Name, err)
	}
	r.written.record(client.ObjectKeyFromObject(td), kind, key, existing.GetResourceVersion(), data)
	return nil
}

// pruneTargets deletes objects this TaskDownload published to earlier but no longer names (after
// spec.target changed or was removed).
func (r *TaskDownloadReconciler) pruneTargets(ctx context.Context, td *downloadsv1alpha1.TaskDownload) error {
	kind, key, hasTarget := targetKey(td)
	sel := client.MatchingFields{publishedForIndex: td.Name}
	for _, k := range []downloadsv1alpha1.TargetKind{downloadsv1alpha1.TargetConfigMap, downloadsv1alpha1.TargetSecret} {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(string(k) + "List"))
		if err := r.List(ctx, list, client.InNamespace(td.Namespace), sel); err != nil {
			return err
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if !metav1.IsControlledBy(obj, td) || (hasTarget && k == kind && obj.GetName() == key.Name) {
				continue
			}
			if err := r.Delete(ctx, obj, client.Preconditions{UID: new(obj.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting stale %s %s: %w", k, obj.GetName(), err)
			}
		}
	}
	return nil
}

// describeTarget names where the URL is published, for messages.
func describeTarget(td *downloadsv1alpha1.TaskDownload) string {
	kind, key, ok := targetKey(td)
	if !ok {
		return "status.signedURL"
	}
	if kind == downloadsv1alpha1.TargetSecret {
		return fmt.Sprintf("Secret %s", key.Name)
	}
	return fmt.Sprintf("ConfigMap %s and status.signedURL", key.Name)
}
