package metrics_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/metrics"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// TestOnlyTheElectedManagerReportsObjects runs two managers sharing a lease on a real API server: the
// standby's cache holds every TaskDownload before it is elected, yet only the leader reports them,
// until the leader stops and the standby takes over.
func TestOnlyTheElectedManagerReportsObjects(t *testing.T) {
	g := NewWithT(t)
	env, cfg, err := envtestutil.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()

	k8s, err := client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})).To(Succeed())
	// No API key Secret: the object stalls without a platform call, which is all this test needs.
	g.Expect(k8s.Create(ctx, &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "scene"},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID: "wf", JobID: "job", TaskID: "task",
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "missing"},
		},
	})).To(Succeed())

	start := func() (ctrl.Manager, context.CancelFunc, <-chan error) {
		o := manager.DefaultOptions()
		o.APIURL = "http://127.0.0.1:1"
		o.Manager = ctrl.Options{
			Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
			LeaderElection: true, LeaderElectionID: "metrics-test", LeaderElectionNamespace: "default",
			// The leader releases the lease when stopped, so the standby takes over within a retry period;
			// the long lease keeps a loaded machine from losing it while the test runs.
			LeaderElectionReleaseOnCancel: true,
			LeaseDuration:                 ptr.To(30 * time.Second), RenewDeadline: ptr.To(20 * time.Second),
			RetryPeriod: ptr.To(500 * time.Millisecond),
			// Two managers in one process register the same controller name.
			Controller: config.Controller{SkipNameValidation: new(true)},
		}
		mgr, err := manager.New(cfg, o)
		g.Expect(err).NotTo(HaveOccurred())
		mctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- mgr.Start(mctx) }()
		t.Cleanup(cancel)
		return mgr, cancel, done
	}

	leader, stopLeader, leaderDone := start()
	g.Eventually(leader.Elected()).WithTimeout(30 * time.Second).Should(BeClosed())
	standby, _, _ := start()
	g.Expect(standby.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	g.Eventually(func(g Gomega) {
		var list downloadsv1alpha1.TaskDownloadList
		g.Expect(standby.GetClient().List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
	}).Should(Succeed(), "the standby's cache is filled before it is elected")
	g.Expect(standby.Elected()).NotTo(BeClosed())

	leaderMetrics := metrics.NewObjectCollector(leader.GetClient(), leader.Elected())
	standbyMetrics := metrics.NewObjectCollector(standby.GetClient(), standby.Elected())
	g.Eventually(func() int {
		return testutil.CollectAndCount(leaderMetrics, "taskdownload_status_condition")
	}).Should(BeNumerically(">", 0), "the leader reports the object's conditions")
	g.Expect(testutil.CollectAndCount(leaderMetrics, "taskdownload_objects")).To(Equal(3))
	g.Expect(testutil.CollectAndCount(standbyMetrics)).To(BeZero(), "the standby reports nothing")

	stopLeader()
	g.Expect(<-leaderDone).To(Succeed())
	g.Eventually(standby.Elected()).WithTimeout(30 * time.Second).Should(BeClosed())
	g.Expect(testutil.CollectAndCount(standbyMetrics, "taskdownload_objects")).To(Equal(3), "the new leader reports")
	g.Expect(testutil.CollectAndCount(standbyMetrics, "taskdownload_status_condition")).To(BeNumerically(">", 0))
}
