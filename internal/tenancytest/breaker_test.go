package tenancytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

// A revoked key in the Secrets of two namespaces, 40 objects in each: the key's breaker once flapped
// between the two Secrets' resourceVersions, and the platform got 71 calls in 15 s. The same key read
// from any Secret is one key: its first call finds it refused, and nothing more is sent until the
// probe a --max-poll-interval later.
func TestRevokedKeyInTwoNamespacesIsCalledOnce(t *testing.T) {
	const perNamespace, window = 40, 15 * time.Second
	g := NewWithT(t)
	ctx := context.Background()
	fake.RevokeKey(keyRevoked)
	start := time.Now()
	namespaces := make([]string, 0, 2)
	for range 2 {
		ns := newNamespace(t, keyRevoked)
		namespaces = append(namespaces, ns)
		for i := range perNamespace {
			task := fakepixxel.Task{WorkflowID: ns, JobID: "job", TaskID: fmt.Sprintf("task-%d", i)}
			fake.Script(task, fakepixxel.Ready(fakepixxel.SignedURL(task, time.Now(), time.Hour)))
		}
		g.Expect(load.Create(ctx, k8s, ns, perNamespace)).To(Succeed())
	}
	refused := func(td *downloadsv1alpha1.TaskDownload) bool {
		for _, c := range td.Status.Conditions {
			if c.Type == downloadsv1alpha1.ConditionStalled && c.Status == metav1.ConditionTrue &&
				(c.Reason == downloadsv1alpha1.ReasonForbidden || c.Reason == downloadsv1alpha1.ReasonUnauthorized) {
				return true
			}
		}
		return false
	}
	for _, ns := range namespaces {
		g.Eventually(func(g Gomega) {
			n, err := load.Count(ctx, k8s, ns, refused)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n).To(Equal(perNamespace))
		}).WithTimeout(window).WithPolling(100 * time.Millisecond).Should(Succeed())
	}
	time.Sleep(time.Until(start.Add(window)))
	calls := callsWith(keyRevoked)
	t.Logf("%d objects in 2 namespaces with a revoked key: %d calls in %s", 2*perNamespace, len(calls), window)
	g.Expect(len(calls)).To(BeNumerically("<=", 2), "at most 2 calls in %s", window)
}
