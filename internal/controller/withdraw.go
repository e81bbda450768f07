package controller

import (
	"context"

	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// withdraw removes the published URL from the target and status when it has expired, or belongs to
// a task the spec no longer names, and nothing new was published: no reader is handed a URL that can
// only fail or that downloads the wrong task's outputs. It runs after the other steps whatever they
// decided, so that the target shows the platform's latest status.
func (r *TaskDownloadReconciler) withdraw(ctx context.Context, s *scope) (outcome, error) {
	td := s.td
	st := td.Status
	if s.obs.published != nil {
		return outcome{}, nil
	}
	switch {
	case st.ExpiresAt != nil && !s.now.Before(st.ExpiresAt.Time):
		s.obs.withdrawn = withdrawnExpired
	case publishedForAnotherTask(td):
		s.obs.withdrawn = withdrawnOtherTask
	default:
		return outcome{}, nil
	}
	s.obs.targetDesc = describeTarget(td)
	if ref, hasTarget := target.Of(td); hasTarget {
		existing, err := r.getTarget(ctx, td, ref)
		if err != nil && !isFailure(err) {
			return outcome{}, err
		}
		if existing != nil {
			taskStatus := st.TaskStatus
			if s.obs.answered {
				taskStatus = s.obs.taskStatus
			}
			if err := r.writeTarget(ctx, td, ref, existing, publication{taskStatus: taskStatus}); err != nil {
				return outcome{}, err
			}
		}
	}
	if s.obs.withdrawn == withdrawnExpired {
		s.log.Info("Signed URL expired before a new one was obtained; removed it", "expiredAt", st.ExpiresAt)
	} else {
		p := st.PublishedTask
		s.log.Info("The spec names another task; removed the previous task's signed URL",
			"previousWorkflowID", p.WorkflowID, "previousJobID", p.JobID, "previousTaskID", p.TaskID)
	}
	return outcome{}, nil
}
