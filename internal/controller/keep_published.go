package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// keepPublished is the step for a Ready TaskDownload whose spec and requested-at annotation were
// already handled: while its URL is fresh there is nothing to ask the platform, and the reconcile ends
// here after checking the target. A target still at the resourceVersion the operator's own last write
// left is untouched; any other is read whole, and one that was deleted or whose data someone else
// changed is reported (TargetModified) and rewritten from status when status knows the URL; otherwise
// (a Secret target) a fresh URL is requested.
func (r *TaskDownloadReconciler) keepPublished(ctx context.Context, s *scope) (ctrl.Result, error) {
	td := s.td
	if !s.inputsHandled() || !hasPublishedURL(td.Status) || publishedForAnotherTask(td) {
		return ctrl.Result{}, nil
	}
	refresh, _ := r.publishedRefreshAt(td)
	if !s.now.Before(refresh) {
		s.log.V(1).Info("Refreshing signed URL", "refreshAt", refresh)
		return ctrl.Result{}, nil
	}
	fresh := ctrl.Result{RequeueAfter: refresh.Sub(s.now)}
	if _, _, hasTarget := targetKey(td); !hasTarget {
		s.done, s.obs.kept = true, true
		return fresh, nil
	}
	kind, key, _ := targetKey(td)
	meta, err := r.getTargetMetadata(ctx, td)
	if err != nil {
		return ctrl.Result{}, err
	}
	written, wrote := r.written.lookup(s.key, kind, key)
	if meta != nil && wrote && meta.ResourceVersion == written.resourceVersion {
		// Untouched since the operator's own last write: nothing to read.
		s.done, s.obs.kept = true, true
		return fresh, nil
	}
	existing, err := r.getTarget(ctx, td)
	if err != nil {
		return ctrl.Result{}, err
	}
	if existing == nil && wrote {
		// The cache may not have seen the operator's own create yet: ask the API server.
		if existing, err = r.readOwnTarget(ctx, td); err != nil {
			return ctrl.Result{}, err
		}
	}
	pub := publication{signedURL: td.Status.SignedURL, taskStatus: td.Status.TaskStatus, expiresAt: td.Status.ExpiresAt}
	if untouched(td, existing, pub, written, wrote) {
		r.written.record(s.key, kind, key, existing.GetResourceVersion(), readData(existing))
		s.done, s.obs.kept = true, true
		return fresh, nil
	}
	r.reportTargetModified(s, existing, pub.signedURL != "")
	if pub.signedURL == "" {
		// A Secret target's URL is not in status: only the platform can give one again.
		return ctrl.Result{}, nil
	}
	if err := r.writeTarget(ctx, td, existing, pub); err != nil {
		return ctrl.Result{}, err
	}
	s.done, s.obs.kept = true, true
	return fresh, nil
}

// untouched tells whether a target read whole still holds what the operator wrote: the data hashed at
// its last write when this process made one, else (after a restart) the publication status describes.
func untouched(td *downloadsv1alpha1.TaskDownload, existing client.Object, pub publication, written writtenTarget, wrote bool) bool {
	if existing == nil {
		return false
	}
	if wrote {
		return hashData(readData(existing)) == written.data
	}
	return targetInSync(td, existing, pub)
}

// readOwnTarget reads the TaskDownload's target from the API server; nil when absent.
func (r *TaskDownloadReconciler) readOwnTarget(ctx context.Context, td *downloadsv1alpha1.TaskDownload) (client.Object, error) {
	kind, key, _ := targetKey(td)
	obj := newTargetObject(kind)
	if err := r.APIReader.Get(ctx, key, obj); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, td) {
		return nil, targetConflict(kind, key.Name)
	}
	return obj, nil
}

// reportTargetModified says, in one Warning event and a log line, that someone other than the operator
// changed or deleted a published target, and how it is put back.
func (r *TaskDownloadReconciler) reportTargetModified(s *scope, existing client.Object, restorable bool) {
	what, how := "changed", "restored from status"
	if existing == nil {
		what, how = "deleted", "recreated from status"
	}
	if !restorable {
		how = "a new signed URL is requested, since a Secret target's URL is not kept in status"
	}
	msg := fmt.Sprintf("%s was %s by someone other than the operator; %s", describeTarget(s.td), what, how)
	s.log.Info("Published target modified", "target", describeTarget(s.td), "change", what)
	if r.Recorder != nil {
		r.Recorder.Eventf(s.td, nil, corev1.EventTypeWarning, downloadsv1alpha1.ReasonTargetModified, "Restore", "%s", msg)
	}
}

// publishedRefreshAt is when the URL the TaskDownload's status describes is due for replacement:
// refreshAtFor counted from status.lastRequestTime, when the URL was obtained.
func (r *TaskDownloadReconciler) publishedRefreshAt(td *downloadsv1alpha1.TaskDownload) (time.Time, bool) {
	st := td.Status
	if st.LastRequestTime == nil {
		return time.Time{}, false
	}
	var expires *time.Time
	if st.ExpiresAt != nil {
		expires = &st.ExpiresAt.Time
	}
	var before *time.Duration
	if td.Spec.RefreshBefore != nil {
		before = &td.Spec.RefreshBefore.Duration
	}
	return refreshAtFor(st.LastRequestTime.Time, expires, before, r.DefaultURLTTL)
}
