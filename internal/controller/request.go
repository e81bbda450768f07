package controller

import (
	"context"
	"math/rand/v2"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// requestDownload is the step that calls the platform API, once, and records its answer: a ready URL
// for publish, a pending answer (polled again after pendingDelay) or a failure. A request the platform
// refused for good on these very inputs is not made again (status.stalledOn survives restarts).
func (r *TaskDownloadReconciler) requestDownload(ctx context.Context, s *scope) (outcome, error) {
	st := s.td.Status
	inputs := s.inputs()
	// Phase may still be Ready: a refresh refused for good leaves the published URL in use until it expires.
	if st.StalledOn == inputs {
		s.log.V(1).Info("Not asking again: the platform refused this request; change the spec, the Secret or the requested-at annotation")
		return outcome{}, nil
	}
	// A wait for the package goes on across transient failures, but not across new inputs.
	var waitingSince *metav1.MicroTime
	if st.PendingSince != nil && s.inputsHandled() {
		waitingSince = st.PendingSince
	}
	s.log.V(1).Info("Requesting download package")
	// The key's budget opens a breaker on 401/403; a new version of this Secret closes it at once.
	secret := s.td.Namespace + "/" + s.td.Spec.APIKeySecretRef.Name
	ctx, sentAt := traceSend(budget.WithSecretVersion(ctx, secret, s.secretVersion), r.Clock)
	d, err := r.Pixxel.RequestDownload(ctx, s.apiKey, pixxel.Task{
		WorkflowID: string(s.td.Spec.WorkflowID), JobID: string(s.td.Spec.JobID), TaskID: string(s.td.Spec.TaskID),
	})
	// A call the key's budget deferred was not made: nothing was learned, so an object whose status
	// already describes these inputs waits for its turn without a status write or event. A new object
	// or new inputs still get a RateLimited condition, so that status never claims what was not done.
	after, deferred := budget.Deferred(err)
	if deferred && s.inputsHandled() &&
		apimeta.FindStatusCondition(st.Conditions, downloadsv1alpha1.ConditionReady) != nil {
		s.log.V(1).Info("Call deferred by the API key's budget", "retryAfter", after)
		return outcome{requeueAfter: after}, nil
	}
	// A deferred call was not made: the inputs are not handled yet and no request time is recorded.
	if !deferred {
		s.obs.requested, s.obs.requestedAt, s.obs.inputs = true, s.requestedAt(), inputs
	}
	if err != nil {
		f := classify(err)
		f.message = conditionMessage(f.message)
		if !f.stalled {
			s.obs.pendingSince = waitingSince
		}
		s.log.Info("Download request failed", "reason", f.reason, "message", f.message)
		return outcome{}, f
	}
	s.obs.answered, s.obs.taskStatus = true, taskStatusText(d.Status)

	switch d.State() {
	case pixxel.StateFailed:
		s.log.Info("Download package failed", "taskStatus", s.obs.taskStatus)
		return outcome{}, taskFailed(s.obs.taskStatus)
	case pixxel.StatePending:
		return r.pollLater(s, waitingSince, sentAt()), nil
	case pixxel.StateReady:
		s.obs.signedURL = d.SignedURL
		return outcome{}, nil
	}
	// A State this switch does not know: never taken for ready, whose URL Validate checked.
	return outcome{}, classify(&pixxel.InvalidResponseError{Reason: "status " + strconv.Quote(s.obs.taskStatus) +
		" is not handled by this operator version"})
}

// pollLater records a pending answer to a call sent at sent, the package being awaited since
// waitingSince (nil: since now), and schedules the next poll after pendingDelay, counted from the call.
func (r *TaskDownloadReconciler) pollLater(s *scope, waitingSince *metav1.MicroTime, sent time.Time) outcome {
	if waitingSince == nil {
		waitingSince = &metav1.MicroTime{Time: s.now}
	}
	s.obs.pending, s.obs.pendingSince = true, waitingSince
	delay := pendingDelay(s.now.Sub(waitingSince.Time), r.PollInterval, r.MaxPollInterval, rand.Float64())
	s.log.V(1).Info("Download package pending", "taskStatus", s.obs.taskStatus, "pendingSince", waitingSince, "retryAfter", delay)
	return outcome{requeueAfter: delay, polled: sent}
}

// traceSend returns a context that records when the request made with it is sent, and a function that
// returns that time once the call is over (now, if nothing was sent). Polls are spaced from that time:
// not from before the key's budget admitted the call, which may wait up to a second for its turn.
func traceSend(ctx context.Context, clk clock.PassiveClock) (context.Context, func() time.Time) {
	var sent atomic.Int64
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { sent.CompareAndSwap(0, clk.Now().UnixNano()) },
	})
	return ctx, func() time.Time {
		if ns := sent.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
		return clk.Now()
	}
}
