package controllertest

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/gitopshealth"
)

// argoHealth runs config/argocd/health.lua the way Argo CD does.
func argoHealth(g Gomega, td *downloadsv1alpha1.TaskDownload) (string, string) {
	status, msg, err := gitopshealth.ArgoCD(td)
	g.Expect(err).NotTo(HaveOccurred())
	return status, msg
}

func TestArgoCDHealthCheck(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()

	t.Run("suspended", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		td := newTaskDownload(ns, "held", "pixxel", uniqueTask())
		td.Spec.Suspend = true
		g.Expect(k8s.Create(ctx, td)).To(Succeed())
		cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonSuspended))
		status, _ := argoHealth(g, cur)
		g.Expect(status).To(Equal("Suspended"))
	})

	t.Run("new object", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		td := newTaskDownload(ns, "fresh", "pixxel", uniqueTask())
		g.Expect(k8s.Create(ctx, td)).To(Succeed()) // the create response: not yet seen by the operator
		status, _ := argoHealth(g, td)
		g.Expect(status).To(Equal("Progressing"))
	})

	pending, ready, failed := lifecycle(t)
	status, msg := argoHealth(g, pending)
	g.Expect(status).To(Equal("Progressing"))
	g.Expect(msg).To(ContainSubstring("preparing the package"))

	status, _ = argoHealth(g, ready)
	g.Expect(status).To(Equal("Healthy"))

	status, msg = argoHealth(g, failed)
	g.Expect(status).To(Equal("Degraded"))
	g.Expect(msg).To(ContainSubstring("unknown task"))
}
