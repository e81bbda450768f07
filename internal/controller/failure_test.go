package controller

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		reason    string
		retry     retryKind
		delay     time.Duration
		stalled   bool
		keepReady bool
	}{
		{"400", &pixxel.Error{StatusCode: 400, Code: "bad"}, v1.ReasonBadRequest, retryNever, 0, true, false},
		{"401", &pixxel.Error{StatusCode: 401}, v1.ReasonUnauthorized, retrySlow, 0, true, false},
		{"403", &pixxel.Error{StatusCode: 403}, v1.ReasonForbidden, retrySlow, 0, true, false},
		{"404", &pixxel.Error{StatusCode: 404}, v1.ReasonNotFound, retrySlow, 0, true, false},
		{"429 with Retry-After", &pixxel.Error{StatusCode: 429, RetryAfter: 7 * time.Second}, v1.ReasonRateLimited, retryAfter, 7 * time.Second, false, true},
		{"429 without Retry-After", &pixxel.Error{StatusCode: 429}, v1.ReasonRateLimited, retryAfter, 0, false, true},
		{"500", &pixxel.Error{StatusCode: 500}, v1.ReasonAPIUnavailable, retryAfter, 0, false, false},
		{"503 with Retry-After", &pixxel.Error{StatusCode: 503, RetryAfter: time.Second}, v1.ReasonAPIUnavailable, retryAfter, time.Second, false, false},
		{"418", &pixxel.Error{StatusCode: 418}, v1.ReasonAPIUnavailable, retryBackoff, 0, false, false},
		{"timeout", &pixxel.TransportError{Op: "PUT", Err: context.DeadlineExceeded}, v1.ReasonAPIUnavailable, retryBackoff, 0, false, false},
		{"connection refused", &pixxel.TransportError{Op: "PUT", Err: &net.OpError{Op: "dial", Err: fmt.Errorf("refused")}}, v1.ReasonAPIUnavailable, retryBackoff, 0, false, false},
		{"invalid answer", &pixxel.InvalidResponseError{Reason: "x"}, v1.ReasonInvalidResponse, retryBackoff, 0, false, false},
		{"oversized answer", &pixxel.BodyTooLargeError{Limit: 1}, v1.ReasonInvalidResponse, retryBackoff, 0, false, false},
		{"wrapped", fmt.Errorf("outer: %w", &pixxel.Error{StatusCode: 403}), v1.ReasonForbidden, retrySlow, 0, true, false},
		{"deferred by the key's budget", &budget.DeferredError{Reason: budget.DeferredBudget, APIError: &pixxel.Error{StatusCode: 429, RetryAfter: 2 * time.Second}}, v1.ReasonRateLimited, retryAfter, 2 * time.Second, false, true},
		{"paused by another call's Retry-After", &budget.DeferredError{Reason: budget.DeferredPaused, APIError: &pixxel.Error{StatusCode: 429, RetryAfter: 3 * time.Second}}, v1.ReasonRateLimited, retryAfter, 3 * time.Second, false, true},
		{"redirect to another origin", &pixxel.RedirectError{From: "https://a:443", To: "http://a:80"}, v1.ReasonAPIUnavailable, retryBackoff, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := classify(tc.err)
			g.Expect(f.reason).To(Equal(tc.reason))
			g.Expect(f.retry).To(Equal(tc.retry))
			g.Expect(f.delay).To(Equal(tc.delay))
			g.Expect(f.stalled).To(Equal(tc.stalled))
			g.Expect(f.keepReady).To(Equal(tc.keepReady))
			g.Expect(f.message).NotTo(BeEmpty())
		})
	}
}

// A call the key's budget put off was not made: its condition must not read as the platform's answer.
func TestDeferredCallsSayNoCallWasMade(t *testing.T) {
	g := NewWithT(t)
	spread := classify(&budget.DeferredError{Reason: budget.DeferredBudget, APIError: &pixxel.Error{StatusCode: 429, RetryAfter: time.Second}})
	g.Expect(spread.message).To(HavePrefix("No call made yet"))
	g.Expect(spread.message).NotTo(ContainSubstring("platform API answered"))
	paused := classify(&budget.DeferredError{Reason: budget.DeferredPaused, APIError: &pixxel.Error{StatusCode: 429, Message: "slow down", RetryAfter: time.Second}})
	g.Expect(paused.message).To(HavePrefix("No call made: the platform answered another call"))
	g.Expect(paused.message).NotTo(ContainSubstring("slow down"), "another object's answer is not quoted")
	g.Expect(paused.message).NotTo(ContainSubstring("platform API answered"))
	g.Expect(classify(&budget.DeferredError{Reason: budget.DeferredBudget, APIError: &pixxel.Error{StatusCode: 429, RetryAfter: 5 * time.Second}}).message).
		To(Equal(spread.message), "the message names no time, so that status stays put while the object waits")
}

func TestAPIErrorMessageCarriesCodeMessageAndDetails(t *testing.T) {
	g := NewWithT(t)
	f := classify(&pixxel.Error{StatusCode: 400, Code: "invalid_task", Message: "task is still running", Details: `{"state":"running"}`})
	g.Expect(f.message).To(Equal(`platform API answered 400 Bad Request: invalid_task: task is still running (details: {"state":"running"})`))
}

func TestFailureBackoffDoublesWithJitterUpToMax(t *testing.T) {
	g := NewWithT(t)
	p := newFailureBackoff(100*time.Millisecond, time.Second)
	key := keyFor("ns", "a")
	got := make([]time.Duration, 0, 6)
	for range 6 {
		got = append(got, p.next(key))
	}
	g.Expect(got[0]).To(BeNumerically("~", 100*time.Millisecond, 10*time.Millisecond))
	g.Expect(got[1]).To(BeNumerically("~", 200*time.Millisecond, 20*time.Millisecond))
	g.Expect(got[2]).To(BeNumerically("~", 400*time.Millisecond, 40*time.Millisecond))
	g.Expect(got[5]).To(BeNumerically("<=", time.Second))
	g.Expect(got[5]).To(BeNumerically(">=", 900*time.Millisecond))
	g.Expect(p.next(keyFor("ns", "b"))).To(BeNumerically("<", 120*time.Millisecond), "objects back off independently")
	p.forget(key)
	g.Expect(p.next(key)).To(BeNumerically("<", 120*time.Millisecond), "forget starts over")
}

// nextReconcile is when an object is reconciled again: by the failure's retry kind, else when the steps
// asked (a poll counted from its call), never later than just after the published URL's expiry.
func TestNextReconcile(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := &TaskDownloadReconciler{MaxPollInterval: time.Minute, PollInterval: time.Second,
		backoff: newFailureBackoff(time.Second, time.Minute), Clock: clocktesting.NewFakePassiveClock(now)}
	key := keyFor("ns", "requeue")
	expiresIn := func(d time.Duration) v1.TaskDownloadStatus {
		return v1.TaskDownloadStatus{ExpiresAt: &metav1.Time{Time: now.Add(d)}}
	}
	for _, tc := range []struct {
		name    string
		failure *failure
		out     outcome
		status  v1.TaskDownloadStatus
		want    time.Duration
		// jittered: the backoff's delay, ±10 %
		jittered bool
	}{
		{name: "no failure keeps the steps' requeue", out: outcome{requeueAfter: 7 * time.Second}, want: 7 * time.Second},
		{name: "nothing due", want: 0},
		{name: "never: wait for the user", failure: &failure{retry: retryNever}, out: outcome{requeueAfter: 7 * time.Second}},
		{name: "slow: the maximum poll interval", failure: &failure{retry: retrySlow}, want: time.Minute},
		{name: "after: the server's delay", failure: &failure{retry: retryAfter, delay: 3 * time.Second}, want: 3 * time.Second},
		{name: "after without a delay: the backoff", failure: &failure{retry: retryAfter}, want: time.Second, jittered: true},
		{name: "a poll counts from its call", out: outcome{requeueAfter: 10 * time.Second, polled: now.Add(-4 * time.Second)},
			want: 6 * time.Second},
		{name: "a slow call still leaves half the delay", out: outcome{requeueAfter: 10 * time.Second, polled: now.Add(-9 * time.Second)},
			want: 5 * time.Second},
		{name: "the published URL expires first", out: outcome{requeueAfter: time.Hour}, status: expiresIn(2 * time.Second),
			want: 2*time.Second + expiryGrace},
		{name: "a poll waits for an expiry due before it, not counting from its call",
			out:    outcome{requeueAfter: 10 * time.Second, polled: now.Add(-4 * time.Second)},
			status: expiresIn(8 * time.Second), want: 8*time.Second + expiryGrace},
		{name: "a poll due before the expiry counts from its call",
			out:    outcome{requeueAfter: 10 * time.Second, polled: now.Add(-4 * time.Second)},
			status: expiresIn(time.Minute), want: 6 * time.Second},
		{name: "a failure's retry is capped by the expiry too", failure: &failure{retry: retrySlow}, status: expiresIn(time.Second),
			want: time.Second + expiryGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r.backoff.forget(key)
			s := &scope{key: key, now: now, obs: observation{failure: tc.failure}}
			got := r.nextReconcile(s, tc.out, tc.status).RequeueAfter
			if tc.jittered {
				g.Expect(got).To(BeNumerically("~", tc.want, tc.want/10))
				return
			}
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// A reconcile's steps merge into the soonest requeue, which keeps its own origin (a poll's call).
func TestOutcomeAnd(t *testing.T) {
	g := NewWithT(t)
	sent := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	poll := outcome{requeueAfter: 5 * time.Second, polled: sent}
	g.Expect(outcome{}.and(poll)).To(Equal(poll))
	g.Expect(poll.and(outcome{})).To(Equal(poll), "nothing due does not replace a requeue")
	g.Expect(poll.and(outcome{requeueAfter: time.Second})).To(Equal(outcome{requeueAfter: time.Second}))
	g.Expect(outcome{requeueAfter: time.Second}.and(poll)).To(Equal(outcome{requeueAfter: time.Second}))
	g.Expect(outcome{done: true}.and(poll)).To(Equal(outcome{requeueAfter: 5 * time.Second, polled: sent, done: true}))
}

func keyFor(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
