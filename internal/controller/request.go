package controller

import (
	"context"
	"math/rand/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// requestDownload is the step that calls the platform API, once, and records its answer: a ready URL
// for publish, a pending answer (polled again after pendingDelay) or a failure. A request the platform
// refused for good on these very inputs is not made again (status.stalledOn survives restarts).
func (r *TaskDownloadReconciler) requestDownload(ctx context.Context, s *scope) (ctrl.Result, error) {
	st := s.td.Status
	inputs := s.inputs()
	if st.Phase == downloadsv1alpha1.PhaseFailed && st.StalledOn == inputs {
		s.log.V(1).Info("Not asking again: the platform refused this request; change the spec, the Secret or the requested-at annotation")
		return ctrl.Result{}, nil
	}
	// A wait for the package goes on across transient failures, but not across new inputs.
	var waitingSince *metav1.MicroTime
	if st.PendingSince != nil && s.inputsHandled() {
		waitingSince = st.PendingSince
	}
	s.obs.requested, s.obs.requestedAt, s.obs.inputs = true, s.requestedAt(), inputs

	s.log.V(1).Info("Requesting download package")
	d, err := r.Pixxel.RequestDownload(ctx, s.apiKey, pixxel.Task{
		WorkflowID: string(s.td.Spec.WorkflowID), JobID: string(s.td.Spec.JobID), TaskID: string(s.td.Spec.TaskID),
	})
	if err != nil {
		f := classify(err)
		f.message = conditionMessage(printable(f.message, s.apiKey))
		if !f.stalled {
			s.obs.pendingSince = waitingSince
		}
		s.log.Info("Download request failed", "reason", f.reason, "message", f.message)
		return ctrl.Result{}, f
	}
	s.obs.answered, s.obs.taskStatus = true, taskStatusText(d.Status, s.apiKey)

	switch d.State() {
	case pixxel.StateFailed:
		s.log.Info("Download package failed", "taskStatus", s.obs.taskStatus)
		return ctrl.Result{}, stalledFailure(downloadsv1alpha1.ReasonTaskFailed,
			"The platform reports the download package as %q", s.obs.taskStatus)
	case pixxel.StatePending:
		if waitingSince == nil {
			waitingSince = &metav1.MicroTime{Time: s.now}
		}
		s.obs.pending, s.obs.pendingSince = true, waitingSince
		delay := pendingDelay(s.now.Sub(waitingSince.Time), r.PollInterval, r.MaxPollInterval, rand.Float64())
		s.log.V(1).Info("Download package pending", "taskStatus", s.obs.taskStatus, "pendingSince", waitingSince, "retryAfter", delay)
		return ctrl.Result{RequeueAfter: delay}, nil
	}
	s.obs.signedURL = d.SignedURL
	return ctrl.Result{}, nil
}
