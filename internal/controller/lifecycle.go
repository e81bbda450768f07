package controller

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// refreshAt is when the published URL should be replaced: spec.refreshBefore ahead of its expiry, or
// once two thirds of its lifetime have passed. A URL whose expiry is unknown is assumed to live
// DefaultURLTTL. The lifetime is counted from status.lastRequestTime, when the URL was obtained.
func (r *TaskDownloadReconciler) refreshAt(td *downloadsv1alpha1.TaskDownload) time.Time {
	if td.Status.LastRequestTime == nil {
		return time.Time{}
	}
	issued := td.Status.LastRequestTime.Time
	if td.Status.ExpiresAt == nil {
		return issued.Add(r.DefaultURLTTL * 2 / 3)
	}
	expires := td.Status.ExpiresAt.Time
	if rb := td.Spec.RefreshBefore; rb != nil {
		return expires.Add(-rb.Duration)
	}
	return issued.Add(expires.Sub(issued) * 2 / 3)
}

// urlExpired tells whether a URL is still published past its expiry.
func urlExpired(td *downloadsv1alpha1.TaskDownload, now time.Time) bool {
	return td.Status.ExpiresAt != nil && !now.Before(td.Status.ExpiresAt.Time)
}

// expire removes an expired URL from the target and status, so that no reader is handed a URL that
// can only fail.
func (r *TaskDownloadReconciler) expire(ctx context.Context, td *downloadsv1alpha1.TaskDownload) error {
	logf := ctrl.LoggerFrom(ctx)
	if _, _, hasTarget := targetKey(td); hasTarget {
		existing, err := r.getTarget(ctx, td)
		if _, isConflict := targetFailure(err); err != nil && !isConflict {
			return err
		}
		if existing != nil {
			if err := r.writeTarget(ctx, td, existing, publication{taskStatus: td.Status.TaskStatus}); err != nil {
				return err
			}
		}
	}
	logf.Info("Signed URL expired before a new one was obtained; removed it", "expiredAt", td.Status.ExpiresAt)
	td.Status.SignedURL = ""
	td.Status.ExpiresAt = nil
	return nil
}

// wakeBeforeExpiry makes sure a reconcile runs when a published URL expires, whatever else was
// scheduled, so that it is removed on time.
func wakeBeforeExpiry(td *downloadsv1alpha1.TaskDownload, result ctrl.Result, now time.Time) ctrl.Result {
	if td.Status.ExpiresAt == nil {
		return result
	}
	// A little after the expiry instant, so that the reconcile sees it passed.
	until := td.Status.ExpiresAt.Sub(now) + 50*time.Millisecond
	if until > 0 && (result.RequeueAfter == 0 || until < result.RequeueAfter) {
		result.RequeueAfter = until
	}
	return result
}
