package controllertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// TestNoSecretsInLogsOrEvents runs scenarios that handle keys and signed URLs (and, when the whole
// package runs, follows every other test), then scans everything the operator printed and every event
// it emitted for the API key and the URLs' signatures.
func TestNoSecretsInLogsOrEvents(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createAPIKeySecret(t, ns, "pixxel")

	var signed []string
	scenario := func(name string, target *downloadsv1alpha1.Target, responses func(task fakepixxel.Task) []fakepixxel.Response, reason string, status metav1.ConditionStatus) {
		task := uniqueTask()
		rs := responses(task)
		for _, r := range rs {
			if r.SignedURL != "" {
				signed = append(signed, r.SignedURL)
			}
		}
		fake.Script(task, rs...)
		td := newTaskDownload(ns, name, "pixxel", task)
		td.Spec.Target = target
		g.Expect(k8s.Create(ctx, td)).To(Succeed())
		waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, status, reason))
	}
	scenario("status-only", nil, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{fakepixxel.Pending(), readyURL(task)}
	}, downloadsv1alpha1.ReasonURLIssued, metav1.ConditionTrue)
	scenario("configmap", &downloadsv1alpha1.Target{}, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	}, downloadsv1alpha1.ReasonURLIssued, metav1.ConditionTrue)
	scenario("secret", &downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret}, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{readyURL(task)}
	}, downloadsv1alpha1.ReasonURLIssued, metav1.ConditionTrue)
	scenario("relative-url", nil, answers(fakepixxel.Ready("/x.zip?X-Amz-Signature=deadbeefcafe")),
		downloadsv1alpha1.ReasonInvalidResponse, metav1.ConditionFalse)
	// A URL that echoes the key is refused: nothing published, the key in no status, event or log.
	scenario("key-in-url", &downloadsv1alpha1.Target{}, answers(fakepixxel.Ready("https://s.example/x.zip?token="+apiKey)),
		downloadsv1alpha1.ReasonInvalidResponse, metav1.ConditionFalse)
	echoed := get(g, &downloadsv1alpha1.TaskDownload{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "key-in-url"}})
	g.Expect(echoed.Status.SignedURL).To(BeEmpty())
	g.Expect(fmt.Sprintf("%+v", echoed.Status)).NotTo(ContainSubstring(apiKey))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "key-in-url"}, &corev1.ConfigMap{})).
		To(Satisfy(apierrors.IsNotFound), "nothing published")
	scenario("forbidden", nil, answers(fakepixxel.Fail(403, "forbidden", "key not valid")),
		downloadsv1alpha1.ReasonForbidden, metav1.ConditionFalse)

	// Give the event broadcaster a moment to flush.
	var events eventsv1.EventList
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(ctx, &events)).To(Succeed())
		g.Expect(events.Items).NotTo(BeEmpty())
	}).WithTimeout(10 * time.Second).Should(Succeed())
	time.Sleep(time.Second)
	g.Expect(k8s.List(ctx, &events)).To(Succeed())

	var printed strings.Builder
	printed.WriteString(logBuffer.String())
	for _, e := range events.Items {
		printed.WriteString(e.Reason + " " + e.Note + "\n")
	}
	out := printed.String()
	g.Expect(out).To(ContainSubstring("Published signed URL"), "the scan must see the operator's logs")
	g.Expect(out).To(ContainSubstring(downloadsv1alpha1.ReasonURLIssued), "the scan must see the operator's events")

	g.Expect(secretLeak(out)).To(BeEmpty(), "the API key or a URL's query string leaked")
	g.Expect(out).NotTo(ContainSubstring("deadbeefcafe"), "an invalid URL's signature leaked")
	for _, u := range signed {
		g.Expect(out).NotTo(ContainSubstring(u))
	}
}
