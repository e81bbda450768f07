package controllertest

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// A refresh the platform refuses for good (here 403) while the published URL still works: Ready stays
// True (gates keep releasing, the URL stays published), Stalled=True says so at once (kstatus Failed,
// Argo CD Degraded) with a Warning event; at expiry the URL goes and Ready turns False.
func TestRefreshRefusedWhileURLWorks(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	td, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{shortLived(task, 9*time.Second), fakepixxel.Fail(403, "forbidden", "key revoked")}
	})
	first := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	url := first.Status.SignedURL

	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonForbidden))
	g.Expect(cur.Status.ExpiresAt.Time).To(BeTemporally(">", time.Now()), "stalled before the URL expired")
	g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled).Message).To(
		ContainSubstring("works until " + cur.Status.ExpiresAtString()))
	g.Expect(cur.Status.SignedURL).To(Equal(url))
	g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseReady))
	g.Expect(computeKstatus(g, cur)).To(Equal(kstatus.FailedStatus))
	cols := printedColumns(g, cur)
	g.Expect(cols).To(HaveKeyWithValue("Ready", "True"))
	g.Expect(cols).To(HaveKeyWithValue("Stalled", downloadsv1alpha1.ReasonForbidden), "kubectl get shows the stall beside Ready")
	g.Expect(cols).NotTo(HaveKey("Status"), "the platform's answer is no default column: it read as the object's health")
	g.Expect(cols).To(HaveKey("Platform Answer (wide)"))
	status, msg := argoHealth(g, cur)
	g.Expect(status).To(Equal("Degraded"))
	g.Expect(msg).To(ContainSubstring("key revoked"))
	g.Eventually(func(g Gomega) {
		var events corev1.EventList
		g.Expect(k8s.List(ctx, &events, client.InNamespace(td.Namespace))).To(Succeed())
		var warned bool
		for _, e := range events.Items {
			warned = warned || (e.Type == corev1.EventTypeWarning && e.Reason == downloadsv1alpha1.ReasonForbidden)
		}
		g.Expect(warned).To(BeTrue(), "a Warning event Forbidden")
	}).WithTimeout(5 * time.Second).Should(Succeed())

	expired := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonExpired))
	g.Expect(expired.Status.SignedURL).To(BeEmpty())
	g.Expect(expired.Status.Phase).To(Equal(downloadsv1alpha1.PhaseFailed))
	g.Expect(condition(expired, downloadsv1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
}

// A Secret deleted while the URL is fresh: the next refresh cannot happen, so Stalled says so at once,
// beside Ready=True; once the Secret is back, Stalled goes without a call to the platform.
func TestMissingSecretStallsBesideReadyUntilItIsBack(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	})
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	calls := fake.Calls(task)

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: td.Namespace, Name: "pixxel"}}
	g.Expect(k8s.Delete(ctx, secret)).To(Succeed())
	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonSecretNotFound))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(cur.Status.SignedURL).NotTo(BeEmpty())

	createAPIKeySecret(t, td.Namespace, "pixxel")
	waitFor(t, td, func(g Gomega, cur *downloadsv1alpha1.TaskDownload) {
		g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled)).To(BeNil())
		g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	})
	g.Expect(fake.Calls(task)).To(Equal(calls), "the URL is fresh: nothing to ask the platform")
}
