package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
)

// checkSuspend is the first step: a suspended TaskDownload makes no calls to the platform. What is
// published stays until it expires (withdraw still runs).
func (r *TaskDownloadReconciler) checkSuspend(_ context.Context, s *scope) (ctrl.Result, error) {
	if !s.td.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	r.backoff.forget(s.key)
	s.obs.suspended = true
	s.done = true
	return ctrl.Result{}, nil
}
