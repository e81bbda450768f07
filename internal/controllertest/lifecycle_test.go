package controllertest

import (
	"context"
	"fmt"
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

// shortLived answers ready with URLs that live ttl from the moment they are handed out.
func shortLived(task fakepixxel.Task, ttl time.Duration) fakepixxel.Response {
	return fakepixxel.Response{Status: "ready", Answer: func(a *fakepixxel.Answer) {
		a.SignedURL = fakepixxel.SignedURL(task, time.Now(), ttl)
	}}
}

func TestShortLivedURLIsReplacedBeforeItExpires(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	// SigV4 URLs carry whole seconds; 6 s lives long enough to see the refresh at two thirds (4 s).
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{shortLived(task, 6*time.Second)}
	}, withTarget(downloadsv1alpha1.Target{}))

	first := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	g.Expect(first.Status.ExpiresAt).NotTo(BeNil(), "the expiry is read from X-Amz-Date + X-Amz-Expires")
	firstExpiry := first.Status.ExpiresAt.Time
	g.Expect(firstExpiry.Sub(first.Status.LastRequestTime.Time)).To(BeNumerically("~", 6*time.Second, 1500*time.Millisecond))
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cm)).To(Succeed())
	g.Expect(cm.Data["EXPIRES_AT"]).To(Equal(firstExpiry.UTC().Format(time.RFC3339)))
	firstURL := cm.Data["SIGNED_URL"]

	// The target is replaced, and stays Ready, before the first URL expires.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cm)).To(Succeed())
		g.Expect(cm.Data["SIGNED_URL"]).NotTo(Equal(firstURL))
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	g.Expect(time.Now()).To(BeTemporally("<", firstExpiry), "replaced before expiry")
	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLRefreshed))
	g.Expect(cur.Status.ExpiresAt.Time).To(BeTemporally(">", firstExpiry))
	g.Expect(cur.Status.SignedURL).To(Equal(cm.Data["SIGNED_URL"]))
	g.Expect(fake.Calls(task)).To(Equal(2))
}

func TestRefreshBeforeOverridesTwoThirds(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// SigV4 URLs carry whole seconds, so a 12 s URL lives 11 to 12 s from when it is handed out. Two
	// thirds would refresh after 7.3 to 8 s; refreshBefore 7s refreshes after 4 to 5 s, still more than
	// the third of its life every URL is used for at least.
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{shortLived(task, 12*time.Second)}
	}, func(td *downloadsv1alpha1.TaskDownload) {
		td.Spec.RefreshBefore = &metav1.Duration{Duration: 7 * time.Second}
	})
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	g.Eventually(func() int { return fake.Calls(task) }).WithTimeout(15 * time.Second).Should(BeNumerically(">=", 2))
	reqs := requestsFor(task)
	g.Expect(reqs[1].Time.Sub(reqs[0].Time)).To(BeNumerically("<", 7*time.Second), "refreshed 7s before expiry, not at two thirds")
	g.Expect(reqs[1].Time.Sub(reqs[0].Time)).To(BeNumerically(">=", 11*time.Second/3), "used for at least a third of its life")
}

func TestExpiredURLIsRemoved(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	// One short-lived URL, then the platform stays pending: no new URL arrives in time.
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{shortLived(task, 3*time.Second), fakepixxel.Pending()}
	}, withTarget(downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret}))
	ns := td.Namespace
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))

	// While refreshing, Ready stays True, the URL stays published and GitOps health does not change.
	refreshing := waitFor(t, td, func(g Gomega, cur *downloadsv1alpha1.TaskDownload) {
		g.Expect(cur.Status.TaskStatus).To(Equal("pending"))
	})
	g.Expect(condition(refreshing, downloadsv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(refreshing, downloadsv1alpha1.ConditionReconciling)).To(BeNil(), "a routine refresh is invisible")
	g.Expect(computeKstatus(g, refreshing)).To(Equal(kstatus.CurrentStatus))
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), secret)).To(Succeed())
	g.Expect(secret.Data["SIGNED_URL"]).NotTo(BeEmpty())

	expired := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonExpired))
	g.Expect(expired.Status.Phase).To(Equal(downloadsv1alpha1.PhasePending))
	g.Expect(expired.Status.ExpiresAt).To(BeNil())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), secret)).To(Succeed())
	g.Expect(secret.Data["SIGNED_URL"]).To(BeEmpty(), "an expired URL is not left for pods to use")
	g.Expect(string(secret.Data["EXPIRES_AT"])).To(BeEmpty())

	g.Eventually(func(g Gomega) {
		var events corev1.EventList
		g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		reasons := make([]string, 0, len(events.Items))
		for _, e := range events.Items {
			reasons = append(reasons, e.Reason)
		}
		g.Expect(reasons).To(ContainElement(downloadsv1alpha1.ReasonExpired))
	}).WithTimeout(5 * time.Second).Should(Succeed())

	// Still polling, the Expired reason stays until a new URL comes.
	g.Consistently(func(g Gomega) {
		g.Expect(condition(get(g, td), downloadsv1alpha1.ConditionReady).Reason).To(Equal(downloadsv1alpha1.ReasonExpired))
	}).WithTimeout(time.Second).Should(Succeed())
	fake.Script(task, readyURL(task))
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
}

// TestFreshURLMakesNoAPICalls moves the operator's clock through a minute while waking the controller
// every five seconds of it: a Ready object whose URL is fresh costs the platform nothing. Not
// parallel: it moves the shared clock.
func TestFreshURLMakesNoAPICalls(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	t.Cleanup(func() { testClock.offset.Store(0) })
	ns := newNamespace(t)
	createAPIKeySecret(t, ns, "pixxel")
	withExpiry, unknownExpiry := uniqueTask(), uniqueTask()
	fake.Script(withExpiry, readyURL(withExpiry))
	fake.Script(unknownExpiry, fakepixxel.Ready("https://storage.example/package.zip?token=opaque"))
	tds := make([]*downloadsv1alpha1.TaskDownload, 0, 2)
	for i, task := range []fakepixxel.Task{withExpiry, unknownExpiry} {
		td := newTaskDownload(ns, fmt.Sprintf("scene-%d", i), "pixxel", task)
		td.Spec.Target = &downloadsv1alpha1.Target{}
		g.Expect(k8s.Create(ctx, td)).To(Succeed())
		ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
		tds = append(tds, ready)
	}
	g.Expect(tds[1].Status.ExpiresAt).To(BeNil(), "no known signing scheme: expiry unknown")

	for step := range 12 {
		testClock.Advance(5 * time.Second)
		for _, td := range tds {
			patch := client.MergeFrom(td.DeepCopy())
			td.Annotations = map[string]string{"example.com/tick": fmt.Sprint(step)}
			g.Expect(k8s.Patch(ctx, td, patch)).To(Succeed())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	g.Expect(fake.Calls(withExpiry)).To(Equal(1))
	g.Expect(fake.Calls(unknownExpiry)).To(Equal(1))

	// Past two thirds of --default-url-ttl (1h), the URL of unknown lifetime is replaced.
	testClock.Advance(41 * time.Minute)
	td := tds[1]
	patch := client.MergeFrom(td.DeepCopy())
	td.Annotations = map[string]string{"example.com/tick": "late"}
	g.Expect(k8s.Patch(ctx, td, patch)).To(Succeed())
	g.Eventually(func() int { return fake.Calls(unknownExpiry) }).WithTimeout(5 * time.Second).Should(Equal(2))
}
