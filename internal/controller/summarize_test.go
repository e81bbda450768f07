package controller

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

var summarizeNow = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// statusWith builds a previous status: phase and (type, status, reason) triples.
func statusWith(phase v1.Phase, conds ...[3]string) v1.TaskDownloadStatus {
	st := v1.TaskDownloadStatus{Phase: phase, ObservedGeneration: 1}
	for _, c := range conds {
		st.Conditions = append(st.Conditions, metav1.Condition{
			Type: c[0], Status: metav1.ConditionStatus(c[1]), Reason: c[2], Message: "before", ObservedGeneration: 1,
			LastTransitionTime: metav1.NewTime(summarizeNow.Add(-time.Hour)),
		})
	}
	return st
}

func TestSummarize(t *testing.T) {
	ready := statusWith(v1.PhaseReady, [3]string{v1.ConditionReady, "True", v1.ReasonURLIssued})
	ready.SignedURL, ready.ExpiresAt = "https://s/x", &metav1.Time{Time: summarizeNow.Add(time.Hour)}
	ready.PublishedTask = &v1.TaskRef{WorkflowID: "w", JobID: "j", TaskID: "t"}
	pending := statusWith(v1.PhasePending,
		[3]string{v1.ConditionReady, "False", v1.ReasonPending}, [3]string{v1.ConditionReconciling, "True", v1.ReasonPending})
	pending.PendingSince = &metav1.MicroTime{Time: summarizeNow.Add(-time.Minute)}
	fresh := v1.TaskDownloadStatus{ObservedGeneration: -1}
	pub := &publication{signedURL: "https://s/new", taskStatus: "ready", task: v1.TaskRef{WorkflowID: "w", JobID: "j", TaskID: "t"},
		obtainedAt: summarizeNow}
	forbidden := classify(&pixxelError403)
	badRequest := &failure{reason: v1.ReasonBadRequest, message: "no", retry: retryNever, stalled: true}
	unavailable := &failure{reason: v1.ReasonAPIUnavailable, message: "down", retry: retryBackoff}
	limited := &failure{reason: v1.ReasonRateLimited, message: "slow down", retry: retryAfter, keepReady: true}

	for _, tc := range []struct {
		name        string
		prev        v1.TaskDownloadStatus
		obs         observation
		phase       v1.Phase
		ready       string // "True/Reason" or "False/Reason"
		reconciling string // "" when absent
		stalled     string // "" when absent
		check       func(g Gomega, st v1.TaskDownloadStatus)
	}{
		{name: "new object, pending answer", prev: fresh,
			obs:   observation{requested: true, answered: true, taskStatus: "pending", pending: true, pendingSince: &metav1.MicroTime{Time: summarizeNow}},
			phase: v1.PhasePending, ready: "False/Pending", reconciling: "True/Pending",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(st.PendingSince.Time).To(Equal(summarizeNow))
				g.Expect(st.TaskStatus).To(Equal("pending"))
				g.Expect(st.LastRequestTime.Time).To(Equal(summarizeNow), "while none is published: the last call that changed status")
			}},
		{name: "published", prev: pending,
			obs:   observation{requested: true, answered: true, taskStatus: "ready", published: pub, statusURL: pub.signedURL, targetDesc: "status.signedURL"},
			phase: v1.PhaseReady, ready: "True/URLIssued",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(st.SignedURL).To(Equal("https://s/new"))
				g.Expect(st.PendingSince).To(BeNil(), "the wait is over")
				g.Expect(*st.PublishedTask).To(Equal(pub.task))
				g.Expect(st.LastRequestTime.Time).To(Equal(summarizeNow), "whole seconds already")
			}},
		{name: "refreshed, refreshBefore clamped", prev: ready,
			obs:   observation{requested: true, answered: true, published: pub, refreshed: true, refreshClamped: true, targetDesc: "Secret x"},
			phase: v1.PhaseReady, ready: "True/URLRefreshed",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(st.SignedURL).To(BeEmpty(), "a Secret target's URL stays out of status")
				g.Expect(apimeta.FindStatusCondition(st.Conditions, v1.ConditionReady).Message).To(HaveSuffix(refreshClampNote))
			}},
		{name: "403 stalls, drops Reconciling, phase Failed", prev: pending,
			obs:   observation{requested: true, failure: forbidden, inputs: "abc"},
			phase: v1.PhaseFailed, ready: "False/Forbidden", stalled: "True/Forbidden",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(st.StalledOn).To(BeEmpty(), "retried every --max-poll-interval: nothing to remember")
			}},
		{name: "400 stalls and is remembered", prev: fresh,
			obs:   observation{requested: true, requestedAt: "r1", failure: badRequest, inputs: "abc"},
			phase: v1.PhaseFailed, ready: "False/BadRequest", stalled: "True/BadRequest",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(st.StalledOn).To(Equal("abc"))
				g.Expect(st.LastHandledRequestedAt).To(Equal("r1"))
			}},
		{name: "a transient failure at refresh keeps a published URL Ready, Current and Healthy", prev: ready,
			obs:   observation{requested: true, failure: unavailable},
			phase: v1.PhaseReady, ready: "True/URLIssued",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(readyMessage(st)).To(Equal("before" + refreshFailedNote + "APIUnavailable: down"))
			}},
		{name: "a failure note is replaced, not appended", prev: summarize(ready, 1, observation{requested: true, failure: unavailable}, summarizeNow),
			obs:   observation{requested: true, failure: &failure{reason: v1.ReasonInvalidResponse, message: "garbled"}},
			phase: v1.PhaseReady, ready: "True/URLIssued",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(readyMessage(st)).To(Equal("before" + refreshFailedNote + "InvalidResponse: garbled"))
			}},
		{name: "a rate limit at refresh is routine: nothing shows", prev: ready,
			obs:   observation{requested: true, failure: limited},
			phase: v1.PhaseReady, ready: "True/URLIssued",
			check: func(g Gomega, st v1.TaskDownloadStatus) { g.Expect(st).To(Equal(ready)) }},
		{name: "a pending refresh is invisible to GitOps health", prev: summarize(ready, 1, observation{requested: true, failure: unavailable}, summarizeNow),
			obs: observation{requested: true, answered: true, taskStatus: "pending", pending: true,
				pendingSince: &metav1.MicroTime{Time: summarizeNow}},
			phase: v1.PhaseReady, ready: "True/URLIssued",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(readyMessage(st)).To(Equal("before"), "the failure note goes with the next answer")
				g.Expect(st.TaskStatus).To(Equal("pending"))
				g.Expect(st.SignedURL).To(Equal(ready.SignedURL))
			}},
		{name: "403 at refresh: Stalled, still Ready while the URL works", prev: ready,
			obs:   observation{requested: true, failure: forbidden, inputs: "abc"},
			phase: v1.PhaseReady, ready: "True/URLIssued", stalled: "True/Forbidden",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				msg := apimeta.FindStatusCondition(st.Conditions, v1.ConditionStalled).Message
				g.Expect(msg).To(HavePrefix("Cannot refresh the signed URL: "))
				g.Expect(msg).To(ContainSubstring("key revoked"))
				g.Expect(msg).To(HaveSuffix("works until 2026-11-28T11:00:00Z"))
				g.Expect(st.SignedURL).To(Equal(ready.SignedURL))
			}},
		{name: "400 at refresh: Stalled, remembered, still Ready", prev: ready,
			obs:   observation{requested: true, failure: badRequest, inputs: "abc"},
			phase: v1.PhaseReady, ready: "True/URLIssued", stalled: "True/BadRequest",
			check: func(g Gomega, st v1.TaskDownloadStatus) { g.Expect(st.StalledOn).To(Equal("abc")) }},
		{name: "a stalled refresh whose URL expires: not Ready, Failed", prev: summarize(ready, 1, observation{requested: true, failure: badRequest, inputs: "abc"}, summarizeNow),
			obs:   observation{withdrawn: withdrawnExpired},
			phase: v1.PhaseFailed, ready: "False/Expired", stalled: "True/BadRequest",
			check: func(g Gomega, st v1.TaskDownloadStatus) { g.Expect(st.SignedURL).To(BeEmpty()) }},
		{name: "a refresh refused at expiry: not Ready, Failed", prev: ready,
			obs:   observation{requested: true, failure: forbidden, withdrawn: withdrawnExpired},
			phase: v1.PhaseFailed, ready: "False/Expired", stalled: "True/Forbidden"},
		{name: "a fresh URL kept in place after a stall that was fixed clears Stalled",
			prev:  summarize(ready, 1, observation{failure: secretNotFound("pixxel", "ns")}, summarizeNow),
			obs:   observation{kept: true},
			phase: v1.PhaseReady, ready: "True/URLIssued"},
		{name: "a fresh URL kept in place leaves a refusal for good Stalled",
			prev:  summarize(ready, 1, observation{requested: true, failure: badRequest, inputs: "abc"}, summarizeNow),
			obs:   observation{kept: true},
			phase: v1.PhaseReady, ready: "True/URLIssued", stalled: "True/BadRequest"},
		{name: "a refresh after a stall clears Stalled", prev: summarize(ready, 1, observation{requested: true, failure: forbidden}, summarizeNow),
			obs:   observation{requested: true, answered: true, published: pub, refreshed: true, targetDesc: "status.signedURL"},
			phase: v1.PhaseReady, ready: "True/URLRefreshed"},
		{name: "a transient failure during a wait keeps pendingSince", prev: pending,
			obs:   observation{requested: true, failure: unavailable, pendingSince: pending.PendingSince},
			phase: v1.PhasePending, ready: "False/APIUnavailable", reconciling: "True/APIUnavailable",
			check: func(g Gomega, st v1.TaskDownloadStatus) { g.Expect(st.PendingSince).To(Equal(pending.PendingSince)) }},
		{name: "a rate limit leaves Ready as it was", prev: pending,
			obs:   observation{requested: true, failure: limited},
			phase: v1.PhasePending, ready: "False/Pending", reconciling: "True/RateLimited"},
		{name: "expired and withdrawn while pending", prev: ready,
			obs:   observation{requested: true, answered: true, taskStatus: "pending", pending: true, withdrawn: withdrawnExpired},
			phase: v1.PhasePending, ready: "False/Expired", reconciling: "True/Pending",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				g.Expect(st.SignedURL).To(BeEmpty())
				g.Expect(st.ExpiresAt).To(BeNil())
				g.Expect(st.PublishedTask).To(BeNil())
			}},
		{name: "withdrawn for another task", prev: ready,
			obs:   observation{requested: true, answered: true, taskStatus: "pending", pending: true, withdrawn: withdrawnOtherTask},
			phase: v1.PhasePending, ready: "False/Pending", reconciling: "True/Pending"},
		{name: "suspended keeps a published URL Ready", prev: ready, obs: observation{suspended: true},
			phase: v1.PhaseReady, ready: "True/Suspended"},
		{name: "suspended before anything was published", prev: fresh, obs: observation{suspended: true},
			phase: v1.PhasePending, ready: "False/Suspended"},
		{name: "nothing learned: status as it was", prev: ready, obs: observation{},
			phase: v1.PhaseReady, ready: "True/URLIssued",
			check: func(g Gomega, st v1.TaskDownloadStatus) { g.Expect(st).To(Equal(ready)) }},
		{name: "a huge platform message is bounded", prev: fresh,
			obs:   observation{requested: true, failure: &failure{reason: v1.ReasonAPIUnavailable, message: strings.Repeat("é\x07", 50000)}},
			phase: v1.PhasePending, ready: "False/APIUnavailable", reconciling: "True/APIUnavailable",
			check: func(g Gomega, st v1.TaskDownloadStatus) {
				for _, c := range st.Conditions {
					g.Expect(len(c.Message)).To(BeNumerically("<=", 1024))
					g.Expect(c.Message).NotTo(ContainSubstring("\x07"))
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			prev := *tc.prev.DeepCopy()
			st := summarize(tc.prev, 1, tc.obs, summarizeNow)
			g.Expect(tc.prev).To(Equal(prev), "summarize does not modify its input")
			g.Expect(st.ObservedGeneration).To(Equal(int64(1)))
			g.Expect(st.Phase).To(Equal(tc.phase))
			g.Expect(condString(st, v1.ConditionReady)).To(Equal(tc.ready))
			g.Expect(condString(st, v1.ConditionReconciling)).To(Equal(tc.reconciling))
			g.Expect(condString(st, v1.ConditionStalled)).To(Equal(tc.stalled))
			if tc.check != nil {
				tc.check(g, st)
			}
		})
	}
}

func readyMessage(st v1.TaskDownloadStatus) string {
	return apimeta.FindStatusCondition(st.Conditions, v1.ConditionReady).Message
}

func condString(st v1.TaskDownloadStatus, condType string) string {
	c := apimeta.FindStatusCondition(st.Conditions, condType)
	if c == nil {
		return ""
	}
	return string(c.Status) + "/" + c.Reason
}

func TestEventFor(t *testing.T) {
	g := NewWithT(t)
	pub := &publication{signedURL: "https://s/x"}
	prev := v1.TaskDownloadStatus{}
	first := summarize(prev, 1, observation{published: pub, refreshClamped: true, targetDesc: "status.signedURL"}, summarizeNow)
	e := eventFor(prev, first, observation{published: pub, refreshClamped: true})
	g.Expect(e.eventType).To(Equal("Warning"))
	g.Expect(e.reason).To(Equal(v1.ReasonRefreshBeforeClamped))

	obs := observation{published: pub, refreshed: true, refreshClamped: true, targetDesc: "status.signedURL"}
	second := summarize(first, 1, obs, summarizeNow.Add(time.Minute))
	e = eventFor(first, second, obs)
	g.Expect(e.eventType).To(Equal("Normal"), "the clamp is told once")
	g.Expect(e.reason).To(Equal(v1.ReasonURLRefreshed))

	e = eventFor(prev, prev, observation{failure: &failure{reason: v1.ReasonForbidden, message: "m"}})
	g.Expect(e.reason).To(Equal(v1.ReasonForbidden))
	g.Expect(eventFor(prev, prev, observation{})).To(BeNil())

	// A refresh refused for good while the URL works: the event says until when it works.
	refused := observation{requested: true, failure: classify(&pixxelError403)}
	stalled := summarize(first, 1, refused, summarizeNow)
	e = eventFor(first, stalled, refused)
	g.Expect(e.eventType).To(Equal("Warning"))
	g.Expect(e.reason).To(Equal(v1.ReasonForbidden))
	g.Expect(e.message).To(HavePrefix("Cannot refresh the signed URL: "))
	g.Expect(e.message).To(ContainSubstring("the published URL works until"))
}

var pixxelError403 = pixxel.Error{StatusCode: 403, Code: "forbidden", Message: "key revoked"}
