package tenancytest

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

// A URL the platform hands out already expired was published as Ready, for two thirds of
// --default-url-ttl, and released gated pods onto it. Neither it nor one expiring within
// --min-url-lifetime (5s) is published: Ready=False, reason URLExpired, the platform asked again after
// backoff, the pod kept gated until a usable URL is published.
func TestExpiredOnArrivalIsNotPublished(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, apiKey)
	task := fakepixxel.Task{WorkflowID: ns, JobID: "job", TaskID: "task"}
	now := time.Now()
	expired := fakepixxel.Ready(fakepixxel.SignedURL(task, now.Add(-2*time.Hour), time.Hour))
	expiring := fakepixxel.Ready(fakepixxel.SignedURL(task, now, 3*time.Second))
	fake.Script(task, expired, expiring, expired)

	td := load.TaskDownload(ns, ns, 0)
	td.Spec.JobID, td.Spec.TaskID = "job", "task"
	g.Expect(k8s.Create(ctx, td)).To(Succeed())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		Spec: corev1.PodSpec{
			Containers:      []corev1.Container{{Name: "main", Image: "busybox:1.37"}},
			SchedulingGates: []corev1.PodSchedulingGate{{Name: downloadsv1alpha1.SchedulingGatePrefix + td.Name}},
		},
	}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())

	cur := &downloadsv1alpha1.TaskDownload{}
	readyReason := func(g Gomega) string {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cur)).To(Succeed())
		c := apimeta.FindStatusCondition(cur.Status.Conditions, downloadsv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse), "never Ready on an expired URL: %s", c.Message)
		return c.Reason
	}
	g.Eventually(readyReason).WithTimeout(10 * time.Second).Should(Equal(downloadsv1alpha1.ReasonURLExpired))
	g.Eventually(func() int { return fake.Calls(task) }).WithTimeout(10*time.Second).Should(BeNumerically(">=", 3),
		"a new URL is asked for after backoff")
	g.Consistently(func(g Gomega) {
		g.Expect(readyReason(g)).To(Equal(downloadsv1alpha1.ReasonURLExpired))
		g.Expect(cur.Status.SignedURL).To(BeEmpty())
		g.Expect(cur.Status.ExpiresAt).To(BeNil())
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: td.Name}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no target published: %v", err)
		got := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		g.Expect(got.Spec.SchedulingGates).To(HaveLen(1), "the pod stays gated")
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	good := fakepixxel.SignedURL(task, time.Now(), time.Hour)
	fake.Script(task, fakepixxel.Ready(good))
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cur)).To(Succeed())
		g.Expect(cur.Status.SignedURL).To(Equal(good))
		got := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		g.Expect(got.Spec.SchedulingGates).To(BeEmpty(), "released once a usable URL is published")
	}).WithTimeout(20 * time.Second).Should(Succeed())
}
