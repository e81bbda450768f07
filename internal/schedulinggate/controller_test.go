package schedulinggate_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/schedulinggate"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// release is how long a test waits for a gate to go: generous, because the machine is shared. How fast
// it goes is measured by the bench (hack/bench -gated-pods), not asserted here.
const release = 15 * time.Second

// A pod waits while its TaskDownload is pending, with one event saying so, and loses exactly our gate
// once the TaskDownload is Ready: other controllers' gates, before and after ours, stay in order, and a
// second gate of ours on a TaskDownload that is not Ready keeps the other pod waiting.
func TestGateRemovedOnceReady(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	task := taskDownload(t, ns, "scene", fakepixxel.Pending())
	waitForCondition(t, ns, downloadsv1alpha1.ConditionReconciling)

	pod := createPod(t, ns, "worker", "example.com/first", gate("scene"), "example.com/last")
	both := createPod(t, ns, "needs-two", gate("scene"), gate("other"))
	g.Eventually(func(g Gomega) {
		g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotReady)).To(HaveLen(1))
		g.Expect(podEvents(g, both, schedulinggate.ReasonTaskDownloadNotFound)).To(HaveLen(1))
	}).WithTimeout(release).Should(Succeed())
	// The TaskDownload answers pending until re-scripted, so nothing may have released them yet.
	g.Expect(gatesOf(g, pod)).To(Equal([]string{"example.com/first", gate("scene"), "example.com/last"}))
	g.Expect(gatesOf(g, both)).To(Equal([]string{gate("scene"), gate("other")}))

	fake.Script(task, ready(task))
	readyAt := waitForCondition(t, ns, downloadsv1alpha1.ConditionReady)
	g.Eventually(func(g Gomega) {
		g.Expect(gatesOf(g, pod)).To(Equal([]string{"example.com/first", "example.com/last"}))
		g.Expect(gatesOf(g, both)).To(Equal([]string{gate("other")}))
	}).WithTimeout(release).WithPolling(10 * time.Millisecond).Should(Succeed())
	t.Logf("gates removed %v after the test saw Ready", time.Since(readyAt).Round(time.Millisecond))
	g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotReady)).To(HaveLen(1))
}

// A pod created with the gate of a TaskDownload that is already Ready is released.
func TestPodGatedOnReadyTaskDownloadIsReleased(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	task := taskDownload(t, ns, "scene", fakepixxel.Pending())
	fake.Script(task, ready(task))
	waitForCondition(t, ns, downloadsv1alpha1.ConditionReady)

	pod := createPod(t, ns, "late", gate("scene"))
	g.Eventually(func(g Gomega) []string { return gatesOf(g, pod) }).WithTimeout(release).Should(BeEmpty())
	g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotReady)).To(BeEmpty())
	g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotFound)).To(BeEmpty())
}

// A pod gated on a TaskDownload that does not exist stays gated and is told why once, however often it
// is looked at again; when the TaskDownload appears but is not Ready, it is told that, once too; when
// the TaskDownload cannot become Ready, it is warned.
func TestMissingTaskDownloadKeepsPodGatedWithOneEvent(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	pod := createPod(t, ns, "early", gate("later"))
	g.Eventually(func(g Gomega) {
		g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotFound)).To(HaveLen(1))
	}).WithTimeout(release).Should(Succeed())
	ev := podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotFound)[0]
	g.Expect(ev.Type).To(Equal(corev1.EventTypeWarning))
	g.Expect(ev.Note).To(ContainSubstring("TaskDownload later, which does not exist"))

	// Each label change is a pod update the controller sees; none may repeat the event.
	for i := range 3 {
		cur := &corev1.Pod{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), cur)).To(Succeed())
		cur.Labels = map[string]string{"poke": string(rune('a' + i))}
		g.Expect(k8s.Update(context.Background(), cur, client.FieldOwner(fieldOwner))).To(Succeed())
	}
	task := taskDownload(t, ns, "later", fakepixxel.Fail(400, "bad_request", "unknown task"))
	g.Eventually(func(g Gomega) {
		g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadStalled)).To(HaveLen(1))
	}).WithTimeout(release).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotFound)).To(HaveLen(1))
		g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadStalled)).To(HaveLen(1))
		g.Expect(gatesOf(g, pod)).To(Equal([]string{gate("later")}))
	}).WithTimeout(2 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Expect(fake.Calls(task)).To(BeNumerically(">=", 1))
}

// Pods that carry none of our gates are never written, even in a namespace where a TaskDownload of the
// same name is Ready: no gates, another controller's gate, and gates that only look like ours.
func TestPodsWithoutOurGateAreNeverWritten(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	others := []*corev1.Pod{
		createPod(t, ns, "plain"),
		createPod(t, ns, "foreign", "example.com/scene"),
		createPod(t, ns, "lookalike", "downloads.pixxel.space.example.com/scene", "evil.downloads.pixxel.space/scene"),
	}
	task := taskDownload(t, ns, "scene", fakepixxel.Pending())
	fake.Script(task, ready(task))
	waitForCondition(t, ns, downloadsv1alpha1.ConditionReady)
	// A pod created after the others and released proves the operator has seen them all by then.
	marker := createPod(t, ns, "marker", gate("scene"))
	g.Eventually(func(g Gomega) []string { return gatesOf(g, marker) }).WithTimeout(release).Should(BeEmpty())

	for _, created := range others {
		cur := &corev1.Pod{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(created), cur)).To(Succeed())
		g.Expect(cur.ResourceVersion).To(Equal(created.ResourceVersion), "pod %s was written", created.Name)
		g.Expect(cur.ManagedFields).To(HaveLen(1))
		g.Expect(cur.ManagedFields[0].Manager).To(Equal(fieldOwner))
		g.Expect(cur.Spec.SchedulingGates).To(Equal(created.Spec.SchedulingGates))
	}
	// The released pod kept everything but the gate.
	cur := &corev1.Pod{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(marker), cur)).To(Succeed())
	g.Expect(cur.Annotations).To(Equal(marker.Annotations))
	g.Expect(cur.Spec.Containers).To(HaveLen(1))
}

// When another controller removes its own gate between our read and our patch, the patch's test fails
// instead of removing by a stale index (which here would remove example.com/b); the pod is read again
// and exactly our gate goes.
func TestStaleReadNeverRemovesAnotherGate(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	// No TaskDownload "direct" exists, so the running operator leaves this pod alone.
	pod := createPod(t, ns, "raced", "example.com/a", gate("direct"), "example.com/b")
	stale := pod.DeepCopy()
	other := []byte(`[{"op":"test","path":"/spec/schedulingGates/0","value":{"name":"example.com/a"}},` +
		`{"op":"remove","path":"/spec/schedulingGates/0"}]`)
	g.Expect(k8s.Patch(context.Background(), pod, client.RawPatch(types.JSONPatchType, other))).To(Succeed())

	r := &schedulinggate.Reconciler{Client: k8s, APIReader: k8s}
	removed, err := r.RemoveGates(context.Background(), stale, []string{"direct"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(removed).To(Equal([]string{"direct"}))
	g.Expect(gatesOf(g, pod)).To(Equal([]string{"example.com/b"}))

	// Nothing of ours left: no write at all.
	before := &corev1.Pod{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), before)).To(Succeed())
	removed, err = r.RemoveGates(context.Background(), stale, []string{"direct"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(removed).To(BeEmpty())
	after := &corev1.Pod{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
}

// Pods outside --watch-namespaces are not cached, so not released, even when a TaskDownload there is
// Ready (its status is written by the test: the operator does not reconcile it either).
func TestPodsOutsideWatchedNamespacesAreLeftAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	td := &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: unwatched, Name: "scene"},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID: "wf", JobID: "job", TaskID: "task",
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel"},
		},
	}
	g.Expect(k8s.Create(ctx, td)).To(Succeed())
	td.Status.Phase = downloadsv1alpha1.PhaseReady
	td.Status.Conditions = []metav1.Condition{{
		Type: downloadsv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "URLIssued",
		ObservedGeneration: td.Generation, LastTransitionTime: metav1.Now(),
	}}
	g.Expect(k8s.Status().Update(ctx, td)).To(Succeed())

	pod := createPod(t, unwatched, "outside", gate("scene"))
	// A pod in a watched namespace released meanwhile shows the operator was running.
	ns := namespace(t)
	task := taskDownload(t, ns, "scene", fakepixxel.Pending())
	fake.Script(task, ready(task))
	marker := createPod(t, ns, "inside", gate("scene"))
	g.Eventually(func(g Gomega) []string { return gatesOf(g, marker) }).WithTimeout(2 * release).Should(BeEmpty())
	g.Expect(gatesOf(g, pod)).To(Equal([]string{gate("scene")}))
	g.Expect(podEvents(g, pod, schedulinggate.ReasonTaskDownloadNotFound)).To(BeEmpty())
}
