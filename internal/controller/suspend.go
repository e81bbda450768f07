package controller

import (
	"context"
)

// checkSuspend is the first step: a suspended TaskDownload makes no calls to the platform. What is
// published stays until it expires (withdraw still runs).
func (r *TaskDownloadReconciler) checkSuspend(_ context.Context, s *scope) (outcome, error) {
	if !s.td.Spec.Suspend {
		return outcome{}, nil
	}
	r.backoff.forget(s.key)
	s.obs.suspended = true
	return outcome{done: true}, nil
}
