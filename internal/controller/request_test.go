package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// deferringRequester is a platform client whose key budget puts every call off.
type deferringRequester struct{ calls int }

func (d *deferringRequester) RequestDownload(context.Context, string, pixxel.Task) (*pixxel.Download, error) {
	d.calls++
	return nil, &budget.DeferredError{Reason: budget.DeferredBudget,
		APIError: &pixxel.Error{StatusCode: 429, RetryAfter: 2 * time.Second}}
}

// A call the key's budget put off for a new object shows as RateLimited, "No call made",
// and records neither a request time nor the inputs as handled: nothing was asked of the platform.
func TestDeferredCallRecordsNoRequest(t *testing.T) {
	g := NewWithT(t)
	now := summarizeNow
	td := &v1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Name: "td", Namespace: "ns", Generation: 2,
			Annotations: map[string]string{v1.AnnotationRequestedAt: "again"}},
		Spec: v1.TaskDownloadSpec{WorkflowID: "w", JobID: "j", TaskID: "t"},
	}
	api := &deferringRequester{}
	r := &TaskDownloadReconciler{Pixxel: api, Clock: clocktesting.NewFakePassiveClock(now),
		PollInterval: time.Second, MaxPollInterval: time.Minute}
	s := &scope{td: td, now: now, log: logr.Discard(), apiKey: "k"}

	_, err := r.requestDownload(context.Background(), s)
	g.Expect(api.calls).To(Equal(1))
	f, ok := errors.AsType[*failure](err)
	g.Expect(ok).To(BeTrue(), "a deferral is a failure for status: %v", err)
	g.Expect(s.obs.requested).To(BeFalse())
	s.obs.failure = f

	g.Expect(r.retryDelay(s.key, f)).To(Equal(2*time.Second), "at the key's turn")
	next := summarize(td.Status, td.Generation, s.obs, now)
	g.Expect(next.LastHandledRequestedAt).To(BeEmpty(), "the new requested-at value is not handled by a call not made")
	g.Expect(next.LastRequestTime).To(BeNil())
	for _, condType := range []string{v1.ConditionReady, v1.ConditionReconciling} {
		c := apimeta.FindStatusCondition(next.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), condType)
		g.Expect(c.Reason).To(Equal(v1.ReasonRateLimited), condType)
		g.Expect(c.Message).To(HavePrefix("No call made yet"), condType)
	}
}
