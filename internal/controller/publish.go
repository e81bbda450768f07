package controller

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// publish is the step that writes a URL the platform just handed out to the target, if any, prunes
// targets the spec no longer names, and records the publication for status (which shows the URL
// unless the target is a Secret). The next reconcile is due when the URL should be refreshed.
func (r *TaskDownloadReconciler) publish(ctx context.Context, s *scope) (outcome, error) {
	if s.obs.signedURL == "" {
		return outcome{}, nil
	}
	td := s.td
	expiresAt, f := r.expiryOf(s.obs.signedURL, s.now)
	if f != nil {
		s.log.Info("Signed URL not published", "reason", f.reason, "message", f.message)
		return outcome{}, f
	}
	pub := publication{
		signedURL: s.obs.signedURL, taskStatus: s.obs.taskStatus, expiresAt: expiresAt, task: specTask(td),
		obtainedAt: obtainedAt(s.now),
	}
	ref, hasTarget := target.Of(td)
	if hasTarget {
		existing, err := r.getTarget(ctx, td, ref)
		if err != nil {
			return outcome{}, err
		}
		if err := r.writeTarget(ctx, td, ref, existing, pub); err != nil {
			return outcome{}, err
		}
	}
	if err := r.pruneTargets(ctx, td); err != nil {
		return outcome{}, err
	}
	r.backoff.forget(s.key)

	s.obs.published, s.obs.targetDesc = &pub, describeTarget(td)
	if !hasTarget || ref.Kind.URLInStatus() {
		s.obs.statusURL = pub.signedURL
	}
	previous := td.Status.SignedURL
	s.obs.refreshed = hasPublishedURL(td.Status) && (previous == "" || previous != pub.signedURL)

	refresh, clamped := r.urlRefreshAt(td, pub.obtainedAt, pub.expiresAt)
	s.obs.refreshClamped = clamped
	s.log.Info("Published signed URL", "target", s.obs.targetDesc, "url", signedurl.Redact(pub.signedURL),
		"expiresAt", pub.expiresAt, "refreshAt", refresh, "refreshBeforeClamped", clamped)
	return outcome{requeueAfter: refresh.Sub(s.now)}, nil
}

// urlRefreshAt is refreshAtFor for a URL of td obtained at obtained, expiring at expiresAt (nil when
// unknown), with td's spec.refreshBefore and --default-url-ttl.
func (r *TaskDownloadReconciler) urlRefreshAt(td *downloadsv1alpha1.TaskDownload, obtained time.Time,
	expiresAt *metav1.Time) (at time.Time, clamped bool) {
	var expires *time.Time
	if expiresAt != nil {
		expires = &expiresAt.Time
	}
	var before *time.Duration
	if td.Spec.RefreshBefore != nil {
		before = &td.Spec.RefreshBefore.Duration
	}
	return refreshAtFor(obtained, expires, before, r.DefaultURLTTL)
}

// expiryOf reads when a URL handed out at now expires; nil when the URL does not say (then
// --default-url-ttl applies). A URL already expired, or expiring within --min-url-lifetime, is a
// failure: published, it would hand pods (and the scheduling gates) a URL that fails or soon will.
func (r *TaskDownloadReconciler) expiryOf(signedURL string, now time.Time) (*metav1.Time, *failure) {
	e, ok := signedurl.Parse(signedURL)
	if !ok {
		return nil, nil
	}
	if left := e.ExpiresAt.Sub(now); left < max(r.MinURLLifetime, time.Nanosecond) {
		return nil, urlExpired(e.ExpiresAt, now, r.MinURLLifetime)
	}
	return &metav1.Time{Time: e.ExpiresAt}, nil
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
