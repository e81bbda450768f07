package controllertest

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

func TestPendingThenReadyPublishesInStatus(t *testing.T) {
	g := NewWithT(t)
	var url string
	// Long enough pending to observe the Pending state, then ready.
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		url = fakepixxel.SignedURL(task, time.Now(), time.Hour)
		return []fakepixxel.Response{fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Ready(url)}
	})

	pending := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, "Pending"))
	g.Expect(pending.Status.Phase).To(Equal(downloadsv1alpha1.PhasePending))
	g.Expect(pending.Status.TaskStatus).To(Equal("pending"))
	g.Expect(condition(pending, downloadsv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(pending.Status.SignedURL).To(BeEmpty())

	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
	g.Expect(ready.Status.Phase).To(Equal(downloadsv1alpha1.PhaseReady))
	g.Expect(ready.Status.TaskStatus).To(Equal("ready"))
	g.Expect(ready.Status.SignedURL).To(Equal(url))
	g.Expect(ready.Status.LastRequestTime).NotTo(BeNil())
	g.Expect(condition(ready, downloadsv1alpha1.ConditionReconciling)).To(BeNil(), "kstatus: Reconciling only while true")
	g.Expect(condition(ready, downloadsv1alpha1.ConditionStalled)).To(BeNil())
	g.Expect(ready.Spec.APIKeySecretRef.Key).To(Equal("api-key"), "the key defaults in the schema")

	g.Expect(fake.Calls(task)).To(Equal(5))
	for _, r := range requestsFor(task) {
		g.Expect(r.Method).To(Equal("PUT"))
		g.Expect(r.Authorization).To(Equal(namespaceKey(td.Namespace)))
		g.Expect(r.RawPath).To(Equal("/v0/workflows/" + task.WorkflowID + "/jobs/" + task.JobID + "/tasks/" + task.TaskID + "/download"))
	}
	g.Expect(pending.Status.PendingSince).NotTo(BeNil(), "kept in status, so that a restart does not start the wait over")
	// Polls are sent --poll-interval apart (timed from when each request was written); the fake sees
	// each when its handler starts, a little later, and that lag varies by a millisecond or so.
	const sendJitter = 5 * time.Millisecond
	reqs := requestsFor(task)
	for i := 1; i < len(reqs); i++ {
		g.Expect(reqs[i].Time.Sub(reqs[i-1].Time)).To(BeNumerically(">=", pollInterval-sendJitter), "never polled sooner than --poll-interval")
	}
	g.Expect(ready.Status.PendingSince).To(BeNil(), "the wait is over")

	// Once Ready, nothing more is asked of the platform.
	g.Consistently(func() int { return fake.Calls(task) }).WithTimeout(time.Second).Should(Equal(5))
}

func requestsFor(task fakepixxel.Task) []fakepixxel.Request {
	var out []fakepixxel.Request
	for _, r := range fake.Requests() {
		if r.Task == task {
			out = append(out, r)
		}
	}
	return out
}

func TestReadyPublishesToConfigMap(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	var url string
	// kind defaults to ConfigMap, name to the TaskDownload's
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		url = fakepixxel.SignedURL(task, time.Now(), time.Hour)
		return []fakepixxel.Response{fakepixxel.Pending(), fakepixxel.Ready(url)}
	}, withTarget(downloadsv1alpha1.Target{}))
	ns := td.Namespace

	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
	g.Expect(ready.Spec.Target.Kind).To(Equal(downloadsv1alpha1.TargetConfigMap))
	g.Expect(ready.Status.SignedURL).To(Equal(url))

	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "scene"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(Equal(map[string]string{
		"SIGNED_URL": url, "STATUS": "ready", "EXPIRES_AT": ready.Status.ExpiresAtString(),
		"WORKFLOW_ID": task.WorkflowID, "JOB_ID": task.JobID, "TASK_ID": task.TaskID,
	}))
	g.Expect(metav1.IsControlledBy(cm, ready)).To(BeTrue(), "the TaskDownload owns its ConfigMap")
}

func TestReadyPublishesToSecretOnly(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	var url string
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		url = fakepixxel.SignedURL(task, time.Now(), time.Hour)
		return []fakepixxel.Response{fakepixxel.Pending(), fakepixxel.Ready(url)}
	}, withTarget(downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret, Name: "scene-url"}))
	ns := td.Namespace

	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
	g.Expect(ready.Status.SignedURL).To(BeEmpty(), "a signed URL is a bearer credential: not in status for Secret targets")

	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "scene-url"}, s)).To(Succeed())
	g.Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(string(s.Data["SIGNED_URL"])).To(Equal(url))
	g.Expect(string(s.Data["STATUS"])).To(Equal("ready"))
	g.Expect(string(s.Data["TASK_ID"])).To(Equal(task.TaskID))
	g.Expect(metav1.IsControlledBy(s, ready)).To(BeTrue())

	// Restarting from status alone cannot restore a Secret's URL: deleting it makes the operator ask again.
	calls := fake.Calls(task)
	g.Expect(k8s.Delete(ctx, s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		restored := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "scene-url"}, restored)).To(Succeed())
		g.Expect(string(restored.Data["SIGNED_URL"])).To(Equal(url))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(fake.Calls(task)).To(Equal(calls + 1))
}

func TestDeletedConfigMapIsRestoredWithoutAPICall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	var url string
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		url = fakepixxel.SignedURL(task, time.Now(), time.Hour)
		return []fakepixxel.Response{fakepixxel.Ready(url)}
	}, withTarget(downloadsv1alpha1.Target{Name: "scene-url"}))
	ns := td.Namespace
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))

	key := client.ObjectKey{Namespace: ns, Name: "scene-url"}
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, key, cm)).To(Succeed())
	cm.Data["SIGNED_URL"] = "https://evil.example/x"
	g.Expect(k8s.Update(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, key, cm)).To(Succeed())
		g.Expect(cm.Data["SIGNED_URL"]).To(Equal(url))
	}).WithTimeout(10*time.Second).Should(Succeed(), "an edited target is put back")

	g.Expect(k8s.Delete(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		restored := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, key, restored)).To(Succeed())
		g.Expect(restored.UID).NotTo(Equal(cm.UID))
		g.Expect(restored.Data["SIGNED_URL"]).To(Equal(url))
	}).WithTimeout(10*time.Second).Should(Succeed(), "a deleted target is recreated")
	g.Expect(fake.Calls(task)).To(Equal(1), "restoring from status needs no API call")
}

func TestNoOpReconcileWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	}, withTarget(downloadsv1alpha1.Target{}))
	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cm)).To(Succeed())

	// An annotation change wakes the controller up without changing anything it publishes.
	patch := client.MergeFrom(ready.DeepCopy())
	ready.Annotations = map[string]string{"example.com/note": "touched"}
	g.Expect(k8s.Patch(ctx, ready, patch)).To(Succeed())
	touchedVersion := ready.ResourceVersion

	g.Consistently(func(g Gomega) {
		cur := get(g, td)
		g.Expect(cur.ResourceVersion).To(Equal(touchedVersion), "status is not rewritten")
		now := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), now)).To(Succeed())
		g.Expect(now.ResourceVersion).To(Equal(cm.ResourceVersion), "the ConfigMap is not rewritten")
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Expect(fake.Calls(task)).To(Equal(1))
}

func TestSecretCreatedLater(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	task := uniqueTask()
	td := newTaskDownload(ns, "scene", "late-secret", task)
	g.Expect(k8s.Create(ctx, td)).To(Succeed())

	stalled := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, "SecretNotFound"))
	g.Expect(condition(stalled, downloadsv1alpha1.ConditionReady).Message).To(ContainSubstring(`"late-secret"`))
	g.Expect(fake.Calls(task)).To(BeZero(), "no API call without a key")

	createAPIKeySecret(t, ns, "late-secret")
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
}

func TestTargetConflictLeavesForeignObjectAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createAPIKeySecret(t, ns, "pixxel")
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"},
		Data:       map[string]string{"owner": "someone else"},
	}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())

	task := uniqueTask()
	fake.Script(task, fakepixxel.Ready(fakepixxel.SignedURL(task, time.Now(), time.Hour)))
	td := newTaskDownload(ns, "scene", "pixxel", task)
	td.Spec.Target = &downloadsv1alpha1.Target{Name: "taken"}
	g.Expect(k8s.Create(ctx, td)).To(Succeed())

	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, "TargetConflict"))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled)).NotTo(BeNil())
	after := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), after)).To(Succeed())
	g.Expect(after.Data).To(Equal(foreign.Data))
	g.Expect(after.OwnerReferences).To(BeEmpty())
}

func TestChangingTargetPrunesTheOldOne(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createAPIKeySecret(t, ns, "pixxel")
	task := uniqueTask()
	td := newTaskDownload(ns, "scene", "pixxel", task)
	td.Spec.Target = &downloadsv1alpha1.Target{Name: "first"}
	g.Expect(k8s.Create(ctx, td)).To(Succeed())
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))

	cur := get(g, td)
	cur.Spec.Target = &downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret, Name: "second"}
	g.Expect(k8s.Update(ctx, cur)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "second"}, &corev1.Secret{})).To(Succeed())
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "first"}, &corev1.ConfigMap{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the ConfigMap no longer named is deleted")
		g.Expect(get(g, td).Status.SignedURL).To(BeEmpty())
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// Editing the IDs of a Ready TaskDownload withdraws the previous task's URL at once: a pod starting
// while the new task is packaged must wait, not download the wrong task's outputs.
func TestEditingTheTaskWithdrawsThePreviousURL(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	td, first := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	}, withTarget(downloadsv1alpha1.Target{}))
	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
	g.Expect(ready.Status.PublishedTask).To(Equal(&downloadsv1alpha1.TaskRef{
		WorkflowID: first.WorkflowID, JobID: first.JobID, TaskID: first.TaskID,
	}))

	second := uniqueTask()
	fake.Script(second, fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Pending(),
		fakepixxel.Pending(), fakepixxel.Pending(), readyURL(second))
	ready.Spec.WorkflowID = downloadsv1alpha1.ResourceID(second.WorkflowID)
	ready.Spec.JobID = downloadsv1alpha1.ResourceID(second.JobID)
	ready.Spec.TaskID = downloadsv1alpha1.ResourceID(second.TaskID)
	g.Expect(k8s.Update(ctx, ready)).To(Succeed())

	pending := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, "Pending"))
	g.Expect(pending.Status.Phase).To(Equal(downloadsv1alpha1.PhasePending))
	g.Expect(pending.Status.SignedURL).To(BeEmpty())
	g.Expect(pending.Status.ExpiresAt).To(BeNil())
	g.Expect(pending.Status.PublishedTask).To(BeNil())
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cm)).To(Succeed())
	g.Expect(cm.Data).To(Equal(map[string]string{
		"SIGNED_URL": "", "STATUS": "pending", "EXPIRES_AT": "",
		"WORKFLOW_ID": second.WorkflowID, "JOB_ID": second.JobID, "TASK_ID": second.TaskID,
	}), "the ConfigMap names the new task and holds no URL until its package is ready")

	done := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, "URLIssued"))
	g.Expect(done.Status.SignedURL).To(ContainSubstring(second.TaskID))
	g.Expect(done.Status.PublishedTask.TaskID).To(Equal(second.TaskID))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cm)).To(Succeed())
	g.Expect(cm.Data["SIGNED_URL"]).To(Equal(done.Status.SignedURL))
}
