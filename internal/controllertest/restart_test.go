package controllertest

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// This file sorts after metrics_test.go on purpose: the metrics registry keeps the object collector of
// the first manager in the process, whose cache stops with it, so phase gauges are asserted before
// any restart.

// "Do not ask again" for a request the platform refused for good is kept in status, so that a
// restarted operator does not ask again either. Not parallel: it restarts the shared manager.
func TestRefusedRequestIsNotRepeatedAfterRestart(t *testing.T) {
	g := NewWithT(t)
	bad, badTask := startTaskDownload(t, answers(fakepixxel.Fail(400, "bad_request", "unknown task")))
	failed, failedTask := startTaskDownload(t, answers(fakepixxel.Response{Status: "failed"}))
	waitFor(t, bad, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonBadRequest))
	cur := waitFor(t, failed, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonTaskFailed))
	g.Expect(cur.Status.StalledOn).NotTo(BeEmpty())
	g.Expect(fake.Calls(badTask)).To(Equal(1))
	g.Expect(fake.Calls(failedTask)).To(Equal(1))

	restartManager(t)
	// The new manager reconciles every object once it starts; a new object Ready shows it is working.
	canary, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	})
	waitFor(t, canary, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	g.Consistently(func() []int { return []int{fake.Calls(badTask), fake.Calls(failedTask)} }).
		WithTimeout(2*time.Second).Should(Equal([]int{1, 1}), "asked again after a restart")

	// Changing an input still asks once more.
	fake.Script(badTask, readyURL(badTask))
	cur = get(g, bad)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Annotations = map[string]string{downloadsv1alpha1.AnnotationRequestedAt: "after-restart"}
	g.Expect(k8s.Patch(context.Background(), cur, patch)).To(Succeed())
	waitFor(t, bad, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
}
