package controller

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// keepPublished is the step for a Ready TaskDownload whose spec and requested-at annotation were
// already handled: while its URL is fresh there is nothing to ask the platform, and the reconcile ends
// here after checking the target. A target that was deleted or edited is rewritten from status when
// status knows the URL; otherwise (a Secret target) a fresh URL is requested.
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
	existing, err := r.getTarget(ctx, td)
	if err != nil {
		return ctrl.Result{}, err
	}
	pub := publication{signedURL: td.Status.SignedURL, taskStatus: td.Status.TaskStatus, expiresAt: td.Status.ExpiresAt}
	if targetInSync(td, existing, pub) {
		s.done, s.obs.kept = true, true
		return fresh, nil
	}
	if pub.signedURL == "" {
		// A Secret target's URL is not in status: only the platform can give one again.
		return ctrl.Result{}, nil
	}
	s.log.Info("Restoring published target", "target", describeTarget(td))
	if err := r.writeTarget(ctx, td, existing, pub); err != nil {
		return ctrl.Result{}, err
	}
	s.done, s.obs.kept = true, true
	return fresh, nil
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
