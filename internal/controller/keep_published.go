package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// keepPublished is the step for a Ready TaskDownload whose spec and requested-at annotation were
// already handled: while its URL is fresh there is nothing to ask the platform, and the reconcile ends
// here after checking the target. A target still at the resourceVersion the operator's own last write
// left is untouched; any other is read whole, and one that was deleted or whose data someone else
// changed is reported (TargetModified) and rewritten from status when status knows the URL; otherwise
// (a kind whose URL status does not show, a Secret) a fresh URL is requested.
func (r *TaskDownloadReconciler) keepPublished(ctx context.Context, s *scope) (outcome, error) {
	td := s.td
	if !s.inputsHandled() || !hasPublishedURL(td.Status) || publishedForAnotherTask(td) {
		return outcome{}, nil
	}
	refresh := r.publishedRefreshAt(td)
	if !s.now.Before(refresh) {
		s.log.V(1).Info("Refreshing signed URL", "refreshAt", refresh)
		return outcome{}, nil
	}
	kept := outcome{requeueAfter: refresh.Sub(s.now), done: true}
	ref, hasTarget := target.Of(td)
	if !hasTarget {
		s.obs.kept = true
		return kept, nil
	}
	meta, err := r.cachedTargetMetadata(ctx, td, ref)
	if err != nil {
		return outcome{}, err
	}
	written, wrote := r.written.lookup(s.key, ref)
	if meta != nil && wrote && meta.ResourceVersion == written.resourceVersion {
		// Untouched since the operator's own last write: nothing to read.
		s.obs.kept = true
		return kept, nil
	}
	var existing client.Object
	if meta != nil || wrote {
		// Read whole from the API server; when the cache has no copy, it may not have seen the
		// operator's own create yet.
		if existing, err = absentAsNil(r.readTarget(ctx, td, ref)); err != nil {
			return outcome{}, err
		}
	}
	pub := publication{signedURL: td.Status.SignedURL, taskStatus: td.Status.TaskStatus, expiresAt: td.Status.ExpiresAt}
	if untouched(td, ref.Kind, existing, pub, written, wrote) {
		r.written.record(s.key, ref, existing.GetResourceVersion(), ref.Kind.Data(existing))
		s.obs.kept = true
		return kept, nil
	}
	r.reportTargetModified(s, ref, existing, pub.signedURL != "")
	if pub.signedURL == "" {
		// The target's URL is not in status (a Secret): only the platform can give one again.
		return outcome{}, nil
	}
	if err := r.writeTarget(ctx, td, ref, existing, pub); err != nil {
		return outcome{}, err
	}
	s.obs.kept = true
	return kept, nil
}

// untouched tells whether a target read whole still holds what the operator wrote: the data hashed at
// its last write when this process made one, else (after a restart) the publication status describes.
func untouched(td *downloadsv1alpha1.TaskDownload, k target.Kind, existing client.Object, pub publication,
	written writtenTarget, wrote bool) bool {
	if existing == nil {
		return false
	}
	if wrote {
		return hashData(k.Data(existing)) == written.data
	}
	return targetInSync(td, k, existing, pub)
}

// reportTargetModified says, in one Warning event and a log line, that someone other than the operator
// changed or deleted a published target, and how it is put back.
func (r *TaskDownloadReconciler) reportTargetModified(s *scope, ref target.Ref, existing client.Object, restorable bool) {
	what, how := "changed", "restored from status"
	if existing == nil {
		what, how = "deleted", "recreated from status"
	}
	if !restorable {
		how = fmt.Sprintf("a new signed URL is requested, since a %s target's URL is not kept in status", ref.Kind.TargetKind())
	}
	msg := fmt.Sprintf("%s was %s by someone other than the operator; %s", describeTarget(s.td), what, how)
	s.log.Info("Published target modified", "target", describeTarget(s.td), "change", what)
	if r.Recorder != nil {
		r.Recorder.Eventf(s.td, nil, corev1.EventTypeWarning, downloadsv1alpha1.ReasonTargetModified, "Restore", "%s", msg)
	}
}

// publishedRefreshAt is when the URL the TaskDownload's status describes is due for replacement:
// urlRefreshAt counted from status.lastRequestTime, when the URL was obtained; at once when status
// does not say.
func (r *TaskDownloadReconciler) publishedRefreshAt(td *downloadsv1alpha1.TaskDownload) time.Time {
	st := td.Status
	if st.LastRequestTime == nil {
		return time.Time{}
	}
	at, _ := r.urlRefreshAt(td, st.LastRequestTime.Time, st.ExpiresAt)
	return at
}
