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

// withdraw removes the published URL from the target and status, so that no reader is handed a URL
// that can only fail or that belongs to a task the spec no longer names.
func (r *TaskDownloadReconciler) withdraw(ctx context.Context, td *downloadsv1alpha1.TaskDownload) error {
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
	td.Status.SignedURL = ""
	td.Status.ExpiresAt = nil
	td.Status.PublishedTask = nil
	return nil
}

// publishedForAnotherTask tells whether the published URL is for a task the spec no longer names.
func publishedForAnotherTask(td *downloadsv1alpha1.TaskDownload) bool {
	p := td.Status.PublishedTask
	return p != nil && *p != specTask(td)
}

// specTask is the task the spec names.
func specTask(td *downloadsv1alpha1.TaskDownload) downloadsv1alpha1.TaskRef {
	return downloadsv1alpha1.TaskRef{
		WorkflowID: string(td.Spec.WorkflowID), JobID: string(td.Spec.JobID), TaskID: string(td.Spec.TaskID),
	}
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
