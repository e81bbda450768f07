package controllertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// printedColumns returns what `kubectl get td` shows for the object, column name to cell, as the API
// server renders the CRD's printer columns (priority-1 columns are those of `-o wide`).
func printedColumns(g Gomega, td *downloadsv1alpha1.TaskDownload) map[string]string {
	hc, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	url := fmt.Sprintf("%s/apis/downloads.pixxel.space/v1alpha1/namespaces/%s/taskdownloads/%s",
		strings.TrimSuffix(cfg.Host, "/"), td.Namespace, td.Name)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "GET %s: %s", url, body)
	var table metav1.Table
	g.Expect(json.Unmarshal(body, &table)).To(Succeed(), string(body))
	g.Expect(table.Rows).To(HaveLen(1))
	out := map[string]string{}
	for i, col := range table.ColumnDefinitions {
		name := col.Name
		if col.Priority > 0 {
			name += " (wide)"
		}
		out[name] = fmt.Sprint(table.Rows[0].Cells[i])
	}
	return out
}

func TestReasonAndMessageColumns(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	td, _ := startTaskDownload(t, answers(fakepixxel.Fail(400, "bad_ids", "unknown workflow")))
	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonBadRequest))
	cols := printedColumns(g, cur)
	g.Expect(cols).To(HaveKeyWithValue("Ready", "False"))
	g.Expect(cols).To(HaveKeyWithValue("Reason", downloadsv1alpha1.ReasonBadRequest))
	g.Expect(cols).To(HaveKey("Message (wide)"))
	g.Expect(cols["Message (wide)"]).To(ContainSubstring("unknown workflow"))
}

// The reported case: spec.refreshBefore 1h on URLs that live 8 s made 227 platform calls in 12 s. The
// refresh is clamped so that each URL is used for a third of its life, and a Warning says so once.
func TestRefreshBeforeBeyondTheLifetimeIsClamped(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	td, task := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{shortLived(task, 8*time.Second)}
	}, withTarget(downloadsv1alpha1.Target{}), func(td *downloadsv1alpha1.TaskDownload) {
		td.Spec.RefreshBefore = &metav1.Duration{Duration: time.Hour}
	})
	waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	time.Sleep(12 * time.Second)

	reqs := requestsFor(task)
	g.Expect(len(reqs)).To(BeNumerically("<=", 7), "about one call per third of a URL's life, not a hot loop")
	g.Expect(len(reqs)).To(BeNumerically(">=", 2), "still refreshed")
	for i := 1; i < len(reqs); i++ {
		// SigV4 dates are whole seconds: a URL lives between 7 and 8 s from when it is handed out.
		g.Expect(reqs[i].Time.Sub(reqs[i-1].Time)).To(BeNumerically(">=", 7*time.Second/3), "call %d", i)
	}
	cur := get(g, td)
	g.Expect(cur.Status.ExpiresAt.Time).To(BeTemporally(">", time.Now()), "the published URL is never left expired")
	g.Expect(condition(cur, downloadsv1alpha1.ConditionReady).Message).To(ContainSubstring("spec.refreshBefore"))

	var events corev1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(td.Namespace))).To(Succeed())
	clamped := 0
	for _, e := range events.Items {
		if e.Reason == downloadsv1alpha1.ReasonRefreshBeforeClamped {
			clamped++
			g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
		}
	}
	g.Expect(clamped).To(Equal(1), "said once")
}

// Without a target nothing else wakes the object: its expiry must.
func TestExpiredURLWithoutTargetIsWithdrawn(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	td, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{shortLived(task, 3*time.Second), fakepixxel.Pending()}
	})
	ready := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	expiry := ready.Status.ExpiresAt.Time
	expired := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonExpired))
	g.Expect(expired.Status.SignedURL).To(BeEmpty())
	g.Expect(expired.Status.ExpiresAt).To(BeNil())
	g.Expect(time.Now()).To(BeTemporally(">=", expiry), "withdrawn at expiry, not before")
}

// A 100 KiB status with control characters used to make the API server reject every status write;
// a 403 echoing the key put it in the condition, the log and the event.
func TestPlatformTextsAreBoundedCleanAndRedacted(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	huge := "preparing\x1b[31m\n" + strings.Repeat("é\x00x", 35000)
	td, _ := startTaskDownload(t, answers(fakepixxel.Response{Status: huge}))
	cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, downloadsv1alpha1.ReasonPending))
	g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
	g.Expect([]rune(cur.Status.TaskStatus)).To(HaveLen(64))
	g.Expect(cur.Status.TaskStatus).To(HavePrefix("preparing[31m"))
	for _, c := range cur.Status.Conditions {
		g.Expect(len(c.Message)).To(BeNumerically("<=", 1024))
		g.Expect(c.Message).NotTo(ContainSubstring("\x00"))
		g.Expect(c.Message).NotTo(ContainSubstring("\x1b"))
	}

	echo, _ := startTaskDownload(t, answers(fakepixxel.Response{HTTPStatus: 403, ErrorCode: "forbidden",
		ErrorMessage: "key " + apiKey + " is revoked", ErrorDetails: map[string]any{"key_suffix": apiKey[6:]}}))
	cur = waitFor(t, echo, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonForbidden))
	msg := condition(cur, downloadsv1alpha1.ConditionReady).Message
	g.Expect(msg).To(ContainSubstring("key [redacted] is revoked"))
	g.Expect(msg).NotTo(ContainSubstring(apiKey[6:]))
	g.Eventually(func(g Gomega) {
		var events corev1.EventList
		g.Expect(k8s.List(ctx, &events, client.InNamespace(echo.Namespace))).To(Succeed())
		g.Expect(events.Items).NotTo(BeEmpty())
		for _, e := range events.Items {
			g.Expect(e.Message).NotTo(ContainSubstring(apiKey[6:]))
		}
	}).WithTimeout(5 * time.Second).Should(Succeed())
	// The suite scans every log line for the key when it ends.
}
