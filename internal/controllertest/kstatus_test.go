package controllertest

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/gitopshealth"
)

// computeKstatus is what Flux, Argo CD's kstatus-based checks and `kubectl wait` style tools see.
func computeKstatus(g Gomega, td *downloadsv1alpha1.TaskDownload) kstatus.Status {
	st, err := gitopshealth.Kstatus(td)
	g.Expect(err).NotTo(HaveOccurred())
	return st
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

	pending, ready, failed := lifecycle(t)
	g.Expect(computeKstatus(g, pending)).To(Equal(kstatus.InProgressStatus))
	g.Expect(computeKstatus(g, ready)).To(Equal(kstatus.CurrentStatus))
	g.Expect(computeKstatus(g, failed)).To(Equal(kstatus.FailedStatus))
}
