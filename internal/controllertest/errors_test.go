package controllertest

import (
	"context"
	"net/http"
	"strings"
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

// The rows of the error taxonomy whose answer is retried later: each shows its reason while waiting
// and recovers on its own once the platform answers ready.
func TestTransientFailuresRecover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		resp   fakepixxel.Response
		reason string
	}{
		{"500", fakepixxel.Fail(500, "internal", "database unavailable"), downloadsv1alpha1.ReasonAPIUnavailable},
		{"503 with Retry-After", fakepixxel.Response{HTTPStatus: 503, RetryAfter: "1"}, downloadsv1alpha1.ReasonAPIUnavailable},
		{"connection reset", fakepixxel.Response{Reset: true}, downloadsv1alpha1.ReasonAPIUnavailable},
		{"timeout", fakepixxel.Response{Status: "ready", SignedURL: "https://s.example/x", Delay: 3 * time.Second}, downloadsv1alpha1.ReasonAPIUnavailable},
		{"malformed JSON", fakepixxel.Response{Body: []byte(`{"status":"ready","signed_url":`)}, downloadsv1alpha1.ReasonInvalidResponse},
		{"ready without URL", fakepixxel.Response{Status: "ready"}, downloadsv1alpha1.ReasonInvalidResponse},
		{"relative URL", fakepixxel.Ready("/packages/x.zip"), downloadsv1alpha1.ReasonInvalidResponse},
		{"other task's answer", fakepixxel.Response{Status: "pending", Answer: func(a *fakepixxel.Answer) { a.WorkflowID = "wf-other" }}, downloadsv1alpha1.ReasonInvalidResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
				return []fakepixxel.Response{tc.resp, tc.resp, readyURL(task)}
			})

			cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, tc.reason))
			g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhasePending))
			rec := condition(cur, downloadsv1alpha1.ConditionReconciling)
			g.Expect(rec).NotTo(BeNil())
			g.Expect(rec.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(rec.Reason).To(Equal(tc.reason))
			g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled)).To(BeNil())

			waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
			g.Expect(fake.Calls(task)).To(Equal(3))
		})
	}
}

func TestBadRequestStallsUntilUserActs(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	bad := fakepixxel.Response{HTTPStatus: 400, ErrorCode: "task_not_finished", ErrorMessage: "the task is still running",
		ErrorDetails: map[string]any{"task_state": "running"}}
	td, task := startTaskDownload(t, answers(bad))

	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonBadRequest))
	g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseFailed))
	ready := condition(cur, downloadsv1alpha1.ConditionReady)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal(downloadsv1alpha1.ReasonBadRequest))
	g.Expect(ready.Message).To(ContainSubstring("task_not_finished"))
	g.Expect(ready.Message).To(ContainSubstring("the task is still running"))
	g.Expect(ready.Message).To(ContainSubstring(`"task_state":"running"`))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionReconciling)).To(BeNil())

	g.Consistently(func() int { return fake.Calls(task) }).WithTimeout(3*time.Second).Should(Equal(1),
		"a 400 is not retried while nothing changes")

	// The requested-at annotation asks for one fresh request.
	fake.Script(task, bad)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Annotations = map[string]string{downloadsv1alpha1.AnnotationRequestedAt: "2026-11-28T12:00:00Z"}
	g.Expect(k8s.Patch(ctx, cur, patch)).To(Succeed())
	g.Eventually(func() int { return fake.Calls(task) }).WithTimeout(5 * time.Second).Should(Equal(1))
	waitFor(t, td, func(g Gomega, cur *downloadsv1alpha1.TaskDownload) {
		g.Expect(cur.Status.LastHandledRequestedAt).To(Equal("2026-11-28T12:00:00Z"))
	})
	g.Consistently(func() int { return fake.Calls(task) }).WithTimeout(time.Second).Should(Equal(1))

	// So does a change to the Secret; this time the platform answers ready.
	fake.Script(task, readyURL(task))
	setAPIKey(t, td.Namespace, apiKey+"-rotated")
	cur = waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled)).To(BeNil())
	g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseReady))
}

// 401, 403 and 404 need the user, so they stall (kstatus Failed, Argo CD Degraded, phase Failed) and
// drop Reconciling; but the platform may grant access or create the task without anything changing
// here, so they are retried every --max-poll-interval and come back to Ready by themselves.
func TestAuthAndNotFoundStallButRetryAtMaxPollInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		reason string
	}{
		{http.StatusUnauthorized, downloadsv1alpha1.ReasonUnauthorized},
		{http.StatusForbidden, downloadsv1alpha1.ReasonForbidden},
		{http.StatusNotFound, downloadsv1alpha1.ReasonNotFound},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
				return []fakepixxel.Response{fakepixxel.Fail(tc.status, "denied", "no access to this workflow"), readyURL(task)}
			})
			cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, tc.reason))
			g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseFailed))
			ready := condition(cur, downloadsv1alpha1.ConditionReady)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(ready.Message).To(ContainSubstring("no access to this workflow"))
			g.Expect(condition(cur, downloadsv1alpha1.ConditionReconciling)).To(BeNil(), "kstatus: not Reconciling while Stalled")
			g.Expect(computeKstatus(g, cur)).To(Equal(kstatus.FailedStatus))
			health, _ := argoHealth(g, cur)
			g.Expect(health).To(Equal("Degraded"))
			g.Expect(printedColumns(g, cur)).To(HaveKeyWithValue("Reason", tc.reason))

			// Not retried on the short poll backoff, but again after --max-poll-interval (2s here), and
			// Ready again by itself. Timed by the fake's arrival times, not the test's clock, so that a
			// loaded machine cannot fail it.
			waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
			reqs := requestsFor(task)
			g.Expect(reqs[1].Time.Sub(reqs[0].Time)).To(BeNumerically(">=", maxPoll),
				"retried after --max-poll-interval, not on the poll backoff (%s)", pollInterval)
			cur = get(g, td)
			g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled)).To(BeNil())
			g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseReady))
		})
	}
}

func TestForbiddenRetriesAtOnceWhenSecretChanges(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	td, task := startTaskDownload(t, answers(fakepixxel.Fail(403, "forbidden", "key revoked")))
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonForbidden))
	g.Expect(fake.Calls(task)).To(Equal(1))

	fake.Script(task, readyURL(task))
	setAPIKey(t, td.Namespace, "new-key")
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	reqs := requestsFor(task)
	g.Expect(reqs).To(HaveLen(2))
	g.Expect(reqs[1].Authorization).To(Equal("new-key"))
	g.Expect(reqs[1].Time.Sub(reqs[0].Time)).To(BeNumerically("<", maxPoll),
		"retried when the Secret changed, before --max-poll-interval would have retried it")
}

func TestRateLimitedWaitsForRetryAfter(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	limited := fakepixxel.Response{HTTPStatus: 429, ErrorCode: "rate_limited", RetryAfter: "1"}
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{limited, readyURL(task)}
	})

	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, downloadsv1alpha1.ReasonRateLimited))
	g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhasePending))
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	reqs := requestsFor(task)
	g.Expect(len(reqs)).To(BeNumerically(">=", 2))
	g.Expect(reqs[1].Time.Sub(reqs[0].Time)).To(BeNumerically(">=", 950*time.Millisecond), "Retry-After: 1 is honoured")
}

func TestTaskFailedStalls(t *testing.T) {
	t.Parallel()
	for _, status := range []string{"failed", "ERROR", "Cancelled"} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			td, task := startTaskDownload(t, answers(fakepixxel.Pending(), fakepixxel.Response{Status: status}))
			cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonTaskFailed))
			g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseFailed))
			g.Expect(cur.Status.TaskStatus).To(Equal(status))
			g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Reason).To(Equal(downloadsv1alpha1.ReasonTaskFailed))
			g.Consistently(func() int { return fake.Calls(task) }).WithTimeout(1500 * time.Millisecond).Should(Equal(2))
		})
	}
}

func TestUnknownStatusKeepsPolling(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	td, task := startTaskDownload(t, answers(fakepixxel.Response{Status: "packaging"}))
	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, downloadsv1alpha1.ReasonPending))
	g.Expect(cur.Status.TaskStatus).To(Equal("packaging"))
	g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhasePending))
	g.Eventually(func() int { return fake.Calls(task) }).WithTimeout(3 * time.Second).Should(BeNumerically(">=", 3))
}

// hugeKey is a 900 KiB value in a user's own Secret, the size that once cost seconds of CPU per reconcile.
var hugeKey = strings.Repeat("pk_live_", 900<<10/8)

func TestSecretKeyProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		data   map[string]string
		reason string
	}{
		{"key missing", map[string]string{"token": apiKey}, downloadsv1alpha1.ReasonSecretKeyNotFound},
		{"value empty", map[string]string{"api-key": "  \n"}, downloadsv1alpha1.ReasonSecretKeyEmpty},
		// A 900 KiB key made each reconcile spend seconds of CPU redacting answers with it.
		{"key too long", map[string]string{"api-key": hugeKey}, downloadsv1alpha1.ReasonAPIKeyInvalid},
		{"key over 4 KiB by one", map[string]string{"api-key": strings.Repeat("k", 4<<10+1)}, downloadsv1alpha1.ReasonAPIKeyInvalid},
		{"line break in key", map[string]string{"api-key": "pk_live_first\r\nX-Injected: pk_live_second"}, downloadsv1alpha1.ReasonAPIKeyInvalid},
		{"control character in key", map[string]string{"api-key": "pk_live_\x00_tail_of_key"}, downloadsv1alpha1.ReasonAPIKeyInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t)
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pixxel"}, StringData: tc.data}
			g.Expect(k8s.Create(ctx, secret)).To(Succeed())
			task := uniqueTask()
			td := newTaskDownload(ns, "scene", "pixxel", task)
			g.Expect(k8s.Create(ctx, td)).To(Succeed())

			cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, tc.reason))
			g.Expect(condition(cur, downloadsv1alpha1.ConditionStalled)).NotTo(BeNil())
			g.Expect(fake.Calls(task)).To(BeZero(), "no API call without a usable key")
			if value := tc.data["api-key"]; len(value) > 16 {
				for _, part := range []string{"pk_live_first", "pk_live_second", "_tail_of_key", value[:16]} {
					g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Message).NotTo(ContainSubstring(part))
				}
			}

			// A stalled object is never retried on a timer: only the Secret watch can bring it to Ready.
			secret.StringData = map[string]string{"api-key": apiKey}
			g.Expect(k8s.Update(ctx, secret)).To(Succeed())
			waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
		})
	}
}

func TestTargetConflictClearsWhenForeignObjectGoes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createAPIKeySecret(t, ns, "pixxel")
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken"}, StringData: map[string]string{"x": "y"}}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
	task := uniqueTask()
	fake.Script(task, readyURL(task))
	td := newTaskDownload(ns, "scene", "pixxel", task)
	td.Spec.Target = &downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret, Name: "taken"}
	g.Expect(k8s.Create(ctx, td)).To(Succeed())
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonTargetConflict))

	g.Expect(k8s.Delete(ctx, foreign)).To(Succeed())
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	mine := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "taken"}, mine)).To(Succeed())
	g.Expect(metav1.IsControlledBy(mine, get(g, td))).To(BeTrue())
}

func TestSuspendStopsAPICalls(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	}, func(td *downloadsv1alpha1.TaskDownload) { td.Spec.Suspend = true })

	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonSuspended))
	g.Consistently(func() int { return fake.Calls(task) }).WithTimeout(time.Second).Should(BeZero())

	cur := get(g, td)
	cur.Spec.Suspend = false
	g.Expect(k8s.Update(ctx, cur)).To(Succeed())
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))

	// Suspending a Ready object keeps Ready's value and the published URL.
	cur = get(g, td)
	url := cur.Status.SignedURL
	cur.Spec.Suspend = true
	g.Expect(k8s.Update(ctx, cur)).To(Succeed())
	cur = waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonSuspended))
	g.Expect(cur.Status.SignedURL).To(Equal(url))
}

func TestPublishedURLStaysWhileRefreshFails(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{fakepixxel.Pending(), readyURL(task)}
	})
	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	url := cur.Status.SignedURL

	fake.Script(task, fakepixxel.Fail(503, "maintenance", "back soon"))
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Annotations = map[string]string{downloadsv1alpha1.AnnotationRequestedAt: "1"}
	g.Expect(k8s.Patch(ctx, cur, patch)).To(Succeed())

	cur = waitFor(t, td, func(g Gomega, cur *downloadsv1alpha1.TaskDownload) {
		g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Message).To(ContainSubstring("failed and is retried: APIUnavailable"))
	})
	g.Expect(cur.Status.SignedURL).To(Equal(url), "the published URL stays until it expires")
	g.Expect(cur.Status.Phase).To(Equal(downloadsv1alpha1.PhaseReady))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(condition(cur, downloadsv1alpha1.ConditionReconciling)).To(BeNil(), "the URL works: GitOps health stays Current")
	g.Expect(computeKstatus(g, cur)).To(Equal(kstatus.CurrentStatus))
}
