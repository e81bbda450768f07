package controller

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// refreshClampNote ends the Ready message while spec.refreshBefore is clamped (see refreshAtFor).
const refreshClampNote = "; spec.refreshBefore is not shorter than the URL's lifetime, so it is refreshed after a third of it"

// refreshFailedNote starts what Ready's message says, after the publication, while a refresh fails
// for a passing reason and the published URL still works.
const refreshFailedNote = "; the last attempt to refresh it failed and is retried: "

// summarize returns the status that follows prev after a reconcile of the given generation observed
// obs at now. It is the only place that writes status fields, and a pure function. Conditions follow
// kstatus: Reconciling and Stalled are present only while true.
func summarize(prev downloadsv1alpha1.TaskDownloadStatus, generation int64, obs observation, now time.Time) downloadsv1alpha1.TaskDownloadStatus {
	st := *prev.DeepCopy()
	st.ObservedGeneration = generation
	c := conditions{st: &st, generation: generation, stamp: metav1.NewTime(now)}

	recordFields(&st, obs)

	// Phase and conditions: the first case that applies.
	urlPublished := hasPublishedURL(prev) && obs.withdrawn == notWithdrawn
	f := obs.failure
	switch {
	case urlPublished && !obs.suspended && obs.published == nil && (f != nil || obs.pending):
		c.refreshing(f)
	case obs.suspended:
		c.suspended(urlPublished)
	case obs.published != nil:
		c.published(obs)
	case f != nil && f.stalled:
		c.stalled(f)
	case f != nil:
		c.retrying(f, obs.withdrawn)
	case obs.pending:
		c.pending(obs.taskStatus)
	default:
		c.unchanged(obs.kept)
	}
	if obs.withdrawn != notWithdrawn {
		c.withdrawn(obs.withdrawn)
	}
	if st.Phase == "" {
		st.Phase = downloadsv1alpha1.PhasePending
	}

	// While no URL is published, lastRequestTime says when the platform last gave an answer that
	// changed anything.
	if obs.requested && obs.published == nil && !hasPublishedURL(st) && !equality.Semantic.DeepEqual(prev, st) {
		st.LastRequestTime = &c.stamp
	}
	return st
}

// recordFields writes what a reconcile asked, was answered and published into status: everything but
// phase and conditions.
func recordFields(st *downloadsv1alpha1.TaskDownloadStatus, obs observation) {
	if obs.requested {
		st.LastHandledRequestedAt = obs.requestedAt
		st.PendingSince = obs.pendingSince
		st.StalledOn = ""
		if f := obs.failure; f != nil && f.retry == retryNever {
			st.StalledOn = obs.inputs
		}
	}
	if obs.answered {
		st.TaskStatus = obs.taskStatus
	}
	if obs.suspended {
		st.PendingSince = nil
	}
	if obs.withdrawn != notWithdrawn {
		st.SignedURL, st.ExpiresAt, st.PublishedTask = "", nil, nil
	}
	if p := obs.published; p != nil {
		st.SignedURL, st.ExpiresAt = obs.statusURL, p.expiresAt
		task := p.task
		st.PublishedTask = &task
		st.LastRequestTime = &metav1.Time{Time: p.obtainedAt}
	}
}

// conditions sets the phase and conditions of st, the status a reconcile of generation writes at stamp.
type conditions struct {
	st         *downloadsv1alpha1.TaskDownloadStatus
	generation int64
	stamp      metav1.Time
}

func (c conditions) set(condType string, status metav1.ConditionStatus, reason, message string) {
	apimeta.SetStatusCondition(&c.st.Conditions, metav1.Condition{
		Type: condType, Status: status, Reason: reason, Message: conditionMessage(message),
		ObservedGeneration: c.generation, LastTransitionTime: c.stamp,
	})
}

func (c conditions) drop(condType string) { apimeta.RemoveStatusCondition(&c.st.Conditions, condType) }

// refreshing sets the conditions of a reconcile that tried to replace a URL that still works,
// and failed (f) or was told the new package is pending (f nil). Ready stays True: pods keep starting.
//   - Refused for good, or the user must fix something: Stalled says so now, long before the URL
//     expires and is withdrawn.
//   - Anything else is routine and invisible to GitOps health (no Reconciling); a failure other than a
//     rate limit is noted in Ready's message (and its Warning event) until the next answer.
func (c conditions) refreshing(f *failure) {
	st := c.st
	c.drop(downloadsv1alpha1.ConditionReconciling)
	switch {
	case f != nil && f.stalled:
		c.set(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, f.reason,
			"Cannot refresh the signed URL: "+f.message+"; the published URL works until "+expiryText(*st))
		return
	case f == nil:
		setReadyNote(st, "")
	case !f.keepReady:
		setReadyNote(st, refreshFailedNote+f.reason+": "+f.message)
	}
	c.drop(downloadsv1alpha1.ConditionStalled)
}

// suspended: nothing is asked of the platform; Ready stays True while a published URL works.
func (c conditions) suspended(urlPublished bool) {
	status := metav1.ConditionFalse
	if urlPublished {
		status = metav1.ConditionTrue
	}
	c.set(downloadsv1alpha1.ConditionReady, status, downloadsv1alpha1.ReasonSuspended,
		"Reconciliation is suspended: no requests are made to the platform API until spec.suspend is false")
	c.drop(downloadsv1alpha1.ConditionReconciling)
	c.drop(downloadsv1alpha1.ConditionStalled)
}

// published: a URL was published in this reconcile, a first one or a refresh.
func (c conditions) published(obs observation) {
	reason := downloadsv1alpha1.ReasonURLIssued
	if obs.refreshed {
		reason = downloadsv1alpha1.ReasonURLRefreshed
	}
	msg := "Signed URL published in " + obs.targetDesc
	if obs.refreshClamped {
		msg += refreshClampNote
	}
	c.set(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, reason, msg)
	c.drop(downloadsv1alpha1.ConditionReconciling)
	c.drop(downloadsv1alpha1.ConditionStalled)
	c.st.Phase = downloadsv1alpha1.PhaseReady
}

// stalled: a failure only the user can resolve, with no URL that works.
func (c conditions) stalled(f *failure) {
	c.set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, f.reason, f.message)
	c.set(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, f.reason, f.message)
	c.drop(downloadsv1alpha1.ConditionReconciling)
	c.st.Phase = downloadsv1alpha1.PhaseFailed
}

// retrying: a transient failure before any URL is published; it is retried, and Reconciling says so.
func (c conditions) retrying(f *failure, withdrawn withdrawal) {
	hasReady := apimeta.FindStatusCondition(c.st.Conditions, downloadsv1alpha1.ConditionReady) != nil
	if !f.keepReady || !hasReady || withdrawn != notWithdrawn {
		c.set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, f.reason, f.message)
	}
	c.set(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, f.reason, f.message)
	c.drop(downloadsv1alpha1.ConditionStalled)
	c.st.Phase = downloadsv1alpha1.PhasePending
}

// pending: the platform is preparing the package. An expired URL's Ready stays as withdraw left it.
func (c conditions) pending(taskStatus string) {
	msg := fmt.Sprintf("The platform is preparing the package (status %q)", taskStatus)
	ready := apimeta.FindStatusCondition(c.st.Conditions, downloadsv1alpha1.ConditionReady)
	if ready == nil || ready.Reason != downloadsv1alpha1.ReasonExpired {
		c.set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonPending, msg)
		c.st.Phase = downloadsv1alpha1.PhasePending
	}
	c.set(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, downloadsv1alpha1.ReasonPending, msg)
	c.drop(downloadsv1alpha1.ConditionStalled)
}

// unchanged: nothing new was learned (a published URL is still fresh); the conditions stay, and their
// generation follows the spec's.
func (c conditions) unchanged(kept bool) {
	for i := range c.st.Conditions {
		c.st.Conditions[i].ObservedGeneration = c.generation
	}
	if kept && c.st.StalledOn == "" {
		// What stalled the refresh (a Secret that was missing) was fixed before the next refresh. A
		// refusal for good (stalledOn) stands until the inputs change.
		c.drop(downloadsv1alpha1.ConditionStalled)
	}
}

// withdrawn leaves nothing Ready after a URL was removed in this reconcile, for reason w.
func (c conditions) withdrawn(w withdrawal) {
	st := c.st
	switch {
	case w == withdrawnExpired:
		c.set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonExpired,
			"The signed URL expired before a new one was obtained; it was removed until the platform issues a new one")
	case w == withdrawnOtherTask && isReady(*st):
		c.set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonPending,
			"Waiting for the signed URL of the task the spec now names")
	}
	if st.Phase == downloadsv1alpha1.PhaseReady {
		st.Phase = downloadsv1alpha1.PhasePending
		if apimeta.IsStatusConditionTrue(st.Conditions, downloadsv1alpha1.ConditionStalled) {
			// A refresh refused for good, and now the URL it would have replaced is gone.
			st.Phase = downloadsv1alpha1.PhaseFailed
		}
	}
}

// setReadyNote replaces what follows the publication in Ready's message (a refresh failure) with note,
// keeping Ready's status, reason and transition time.
func setReadyNote(st *downloadsv1alpha1.TaskDownloadStatus, note string) {
	ready := apimeta.FindStatusCondition(st.Conditions, downloadsv1alpha1.ConditionReady)
	if ready == nil {
		return
	}
	base, _, _ := strings.Cut(ready.Message, refreshFailedNote)
	ready.Message = conditionMessage(base + note)
}

// expiryText says when the published URL expires, for a condition message.
func expiryText(st downloadsv1alpha1.TaskDownloadStatus) string {
	if st.ExpiresAt == nil {
		return "it expires (its expiry cannot be read from it)"
	}
	return st.ExpiresAtString()
}

// hasPublishedURL tells whether a status has a URL published and believed to work.
func hasPublishedURL(st downloadsv1alpha1.TaskDownloadStatus) bool {
	return st.Phase == downloadsv1alpha1.PhaseReady && isReady(st)
}

func isReady(st downloadsv1alpha1.TaskDownloadStatus) bool {
	return apimeta.IsStatusConditionTrue(st.Conditions, downloadsv1alpha1.ConditionReady)
}

// event is one Kubernetes event.
type event struct {
	eventType, reason, action, message string
}

// eventFor is the one event a status change from prev to next deserves, if any: Normal when a URL
// was published, Warning with the condition's reason when something went wrong. A clamped
// spec.refreshBefore is told once, when it first shows in the Ready message.
func eventFor(prev, next downloadsv1alpha1.TaskDownloadStatus, obs observation) *event {
	switch {
	case obs.withdrawn == withdrawnExpired:
		return &event{corev1.EventTypeWarning, downloadsv1alpha1.ReasonExpired, "Expire",
			"The signed URL expired before a new one was obtained; it was removed from " + obs.targetDesc}
	case obs.published != nil:
		ready := apimeta.FindStatusCondition(next.Conditions, downloadsv1alpha1.ConditionReady)
		before := apimeta.FindStatusCondition(prev.Conditions, downloadsv1alpha1.ConditionReady)
		if obs.refreshClamped && (before == nil || !strings.HasSuffix(before.Message, refreshClampNote)) {
			return &event{corev1.EventTypeWarning, downloadsv1alpha1.ReasonRefreshBeforeClamped, "Publish", ready.Message}
		}
		return &event{corev1.EventTypeNormal, ready.Reason, "Publish", ready.Message}
	case obs.failure != nil:
		msg := obs.failure.message
		if stalled := apimeta.FindStatusCondition(next.Conditions, downloadsv1alpha1.ConditionStalled); obs.failure.stalled && stalled != nil {
			msg = stalled.Message // with a URL that still works, it says until when
		}
		return &event{corev1.EventTypeWarning, obs.failure.reason, "Reconcile", conditionMessage(msg)}
	}
	return nil
}
