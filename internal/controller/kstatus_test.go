package controller_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/controller"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// computeKstatus is what Flux, Argo CD's kstatus-based checks and `kubectl wait` style tools see.
func computeKstatus(g Gomega, td *downloadsv1alpha1.TaskDownload) kstatus.Status {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(td)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: raw})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func TestKstatusFollowsTheLifecycle(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()

	t.Run("new object is not Current before its first reconcile", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		td := newTaskDownload(ns, "fresh", "pixxel", uniqueTask())
		td.Spec.Suspend = true
		g.Expect(k8s.Create(ctx, td)).To(Succeed())
		// The create response is the stored object before any controller saw it.
		g.Expect(td.Status.ObservedGeneration).To(Equal(int64(-1)))
		g.Expect(computeKstatus(g, td)).To(Equal(kstatus.InProgressStatus))
	})

	td, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Pending(), readyURL(task)}
	})
	pending := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, controller.ReasonPending))
	g.Expect(computeKstatus(g, pending)).To(Equal(kstatus.InProgressStatus))

	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, controller.ReasonURLIssued))
	g.Expect(computeKstatus(g, ready)).To(Equal(kstatus.CurrentStatus))

	bad, _ := startTaskDownload(t, answers(fakepixxel.Fail(400, "bad_request", "unknown task")))
	failed := waitFor(t, bad, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, controller.ReasonBadRequest))
	g.Expect(computeKstatus(g, failed)).To(Equal(kstatus.FailedStatus))
}
