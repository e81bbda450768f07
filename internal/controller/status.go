package controller

import (
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// observation is what one reconcile saw. summarize turns it into phase and conditions; nothing else
// writes them.
type observation struct {
	// suspended: spec.suspend is true and nothing was attempted.
	suspended bool
	// failure stopped this reconcile short of a published URL.
	failure *failure
	// pendingStatus is the API's raw status when it answered that the package is not ready yet.
	pendingStatus string
	// published is set when this reconcile wrote a new URL; refreshed when it replaced an earlier one.
	published, refreshed bool
	// targetDesc names where the URL is published, for messages.
	targetDesc string
	// requested is set when the platform API was called.
	requested bool
	// expired is set when the published URL expired before a new one was obtained and was removed.
	expired bool
	// withdrawn is set when the published URL was removed because the spec names another task.
	withdrawn bool
}

// summarize sets phase and the Ready, Reconciling and Stalled conditions from what the reconcile saw,
// following kstatus: Reconciling and Stalled are present only while true.
func summarize(td *downloadsv1alpha1.TaskDownload, obs observation) {
	st := &td.Status
	gen := td.Generation
	st.ObservedGeneration = gen
	urlPublished := hasPublishedURL(td) && !obs.expired && !obs.withdrawn

	set := func(condType string, status metav1.ConditionStatus, reason, message string) {
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: condType, Status: status, Reason: reason, Message: message, ObservedGeneration: gen,
		})
	}
	clear := func(condType string) { apimeta.RemoveStatusCondition(&st.Conditions, condType) }

	switch {
	case obs.suspended:
		status := metav1.ConditionFalse
		if urlPublished {
			status = metav1.ConditionTrue
		}
		set(downloadsv1alpha1.ConditionReady, status, ReasonSuspended,
			"Reconciliation is suspended: no requests are made to the platform API until spec.suspend is false")
		clear(downloadsv1alpha1.ConditionReconciling)
		clear(downloadsv1alpha1.ConditionStalled)

	case obs.published:
		reason := ReasonURLIssued
		if obs.refreshed {
			reason = ReasonURLRefreshed
		}
		set(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, reason, "Signed URL published in "+obs.targetDesc)
		clear(downloadsv1alpha1.ConditionReconciling)
		clear(downloadsv1alpha1.ConditionStalled)
		st.Phase = downloadsv1alpha1.PhaseReady

	case obs.failure != nil && obs.failure.stalled:
		set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, obs.failure.reason, obs.failure.message)
		set(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, obs.failure.reason, obs.failure.message)
		clear(downloadsv1alpha1.ConditionReconciling)
		st.Phase = downloadsv1alpha1.PhaseFailed

	case obs.failure != nil:
		// A transient failure: keep trying. A URL that is still published stays usable, so Ready stays
		// True; the failure shows on Reconciling.
		f := obs.failure
		hasReady := apimeta.FindStatusCondition(st.Conditions, downloadsv1alpha1.ConditionReady) != nil
		if !urlPublished && (!f.keepReady || !hasReady || obs.withdrawn) {
			set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, f.reason, f.message)
		}
		set(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, f.reason, f.message)
		clear(downloadsv1alpha1.ConditionStalled)
		if !urlPublished {
			st.Phase = downloadsv1alpha1.PhasePending
		}

	case obs.pendingStatus != "":
		msg := fmt.Sprintf("The platform is preparing the package (status %q)", obs.pendingStatus)
		ready := apimeta.FindStatusCondition(st.Conditions, downloadsv1alpha1.ConditionReady)
		stillExpired := ready != nil && ready.Reason == ReasonExpired
		if !urlPublished && !stillExpired {
			set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonPending, msg)
			st.Phase = downloadsv1alpha1.PhasePending
		}
		set(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, ReasonPending, msg)
		clear(downloadsv1alpha1.ConditionStalled)

	default:
		// Nothing new was learned (a published URL is still fresh); keep conditions, refresh generations.
		for i := range st.Conditions {
			st.Conditions[i].ObservedGeneration = gen
		}
	}
	// A URL removed in this reconcile (expired, or for another task) leaves nothing Ready.
	switch {
	case obs.expired:
		set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonExpired,
			"The signed URL expired before a new one was obtained; it was removed until the platform issues a new one")
	case obs.withdrawn && isReady(td):
		set(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonPending,
			"Waiting for the signed URL of the task the spec now names")
	}
	if (obs.expired || obs.withdrawn) && st.Phase == downloadsv1alpha1.PhaseReady {
		st.Phase = downloadsv1alpha1.PhasePending
	}
	if st.Phase == "" {
		st.Phase = downloadsv1alpha1.PhasePending
	}
}

// hasPublishedURL tells whether a URL is published and believed to work.
func hasPublishedURL(td *downloadsv1alpha1.TaskDownload) bool {
	return td.Status.Phase == downloadsv1alpha1.PhaseReady && isReady(td)
}

func isReady(td *downloadsv1alpha1.TaskDownload) bool {
	return apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionReady)
}
