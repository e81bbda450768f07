package controller

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

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
		{"400", &pixxel.Error{StatusCode: 400, Code: "bad"}, ReasonBadRequest, retryNever, 0, true, false},
		{"401", &pixxel.Error{StatusCode: 401}, ReasonUnauthorized, retrySlow, 0, false, false},
		{"403", &pixxel.Error{StatusCode: 403}, ReasonForbidden, retrySlow, 0, false, false},
		{"404", &pixxel.Error{StatusCode: 404}, ReasonNotFound, retrySlow, 0, false, false},
		{"429 with Retry-After", &pixxel.Error{StatusCode: 429, RetryAfter: 7 * time.Second}, ReasonRateLimited, retryAfter, 7 * time.Second, false, true},
		{"429 without Retry-After", &pixxel.Error{StatusCode: 429}, ReasonRateLimited, retryAfter, 0, false, true},
		{"500", &pixxel.Error{StatusCode: 500}, ReasonAPIUnavailable, retryAfter, 0, false, false},
		{"503 with Retry-After", &pixxel.Error{StatusCode: 503, RetryAfter: time.Second}, ReasonAPIUnavailable, retryAfter, time.Second, false, false},
		{"418", &pixxel.Error{StatusCode: 418}, ReasonAPIUnavailable, retryBackoff, 0, false, false},
		{"timeout", &pixxel.TransportError{Op: "PUT", Err: context.DeadlineExceeded}, ReasonAPIUnavailable, retryBackoff, 0, false, false},
		{"connection refused", &pixxel.TransportError{Op: "PUT", Err: &net.OpError{Op: "dial", Err: fmt.Errorf("refused")}}, ReasonAPIUnavailable, retryBackoff, 0, false, false},
		{"invalid answer", &pixxel.InvalidResponseError{Reason: "x"}, ReasonInvalidResponse, retryBackoff, 0, false, false},
		{"oversized answer", &pixxel.BodyTooLargeError{Limit: 1}, ReasonInvalidResponse, retryBackoff, 0, false, false},
		{"wrapped", fmt.Errorf("outer: %w", &pixxel.Error{StatusCode: 403}), ReasonForbidden, retrySlow, 0, false, false},
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

func TestAPIErrorMessageCarriesCodeMessageAndDetails(t *testing.T) {
	g := NewWithT(t)
	f := classify(&pixxel.Error{StatusCode: 400, Code: "invalid_task", Message: "task is still running", Details: `{"state":"running"}`})
	g.Expect(f.message).To(Equal(`platform API answered 400 Bad Request: invalid_task: task is still running (details: {"state":"running"})`))
}

func TestPollBackoffDoublesWithJitterUpToMax(t *testing.T) {
	g := NewWithT(t)
	p := newPollBackoff(100*time.Millisecond, time.Second)
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

func keyFor(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
