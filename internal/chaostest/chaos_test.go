package chaostest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

var (
	env        *envtest.Environment
	k8s        client.Client
	kubeconfig string
	managerBin string
	workDir    string
	nsCounter  atomic.Int64
)

// objects is how many TaskDownloads each scenario runs: CHAOS_N, or 200.
func objects() int {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_N")); err == nil && n > 0 {
		return n
	}
	return 200
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	teardown.Start() // SIGTERM to make test-chaos stops the control plane and the managers
	var err error
	workDir, err = os.MkdirTemp("", "taskdownload-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workDir) }()
	if managerBin, err = managerproc.Build(workDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cfg *rest.Config
	env, cfg, err = envtestutil.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, err = client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfig, err = envtestutil.WriteKubeconfig(env, workDir, "manager")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// startManager runs the manager binary for one namespace against api; the test's end kills it.
func startManager(t *testing.T, name, namespace, api string, extra ...string) *managerproc.Process {
	t.Helper()
	args := append([]string{
		"--kubeconfig=" + kubeconfig, "--api-url=" + api, "--watch-namespaces=" + namespace,
		"--poll-interval=200ms", "--max-poll-interval=2s", "--request-timeout=1s",
		"--api-qps=1000", "--api-burst=1000",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
	}, extra...)
	p, err := managerproc.Start(managerBin, args, nil, filepath.Join(workDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// newFake starts a fake platform endpoint for many tasks: unscripted tasks answer pending that many
// times, then ready; requests are counted, not kept.
func newFake(t *testing.T, pending int, latency time.Duration) *fakepixxel.Server {
	f := fakepixxel.New()
	t.Cleanup(f.Close)
	f.KeepRequests(false)
	f.SetDefaultPending(pending)
	f.SetLatency(latency)
	return f
}

func newNamespace(t *testing.T) string {
	t.Helper()
	g := NewWithT(t)
	ns := fmt.Sprintf("chaos-%d", nsCounter.Add(1))
	g.Expect(load.Namespace(context.Background(), k8s, ns, "chaos-key")).To(Succeed())
	return ns
}

func createTaskDownloads(t *testing.T, ns string, n int) {
	t.Helper()
	NewWithT(t).Expect(load.Create(context.Background(), k8s, ns, n)).To(Succeed())
}

// countBy lists the namespace's TaskDownloads and counts those that pass.
func countBy(g Gomega, ns string, pass func(*downloadsv1alpha1.TaskDownload) bool) int {
	n, err := load.Count(context.Background(), k8s, ns, pass)
	g.Expect(err).NotTo(HaveOccurred())
	return n
}

var isReady = load.IsReady

func waitAllReady(t *testing.T, ns string, n int, timeout time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(countBy(g, ns, isReady)).To(Equal(n))
	}).WithTimeout(timeout).WithPolling(500 * time.Millisecond).Should(Succeed())
}

// checkPublished asserts every ConfigMap holds the URL its TaskDownload's status shows.
func checkPublished(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	var list downloadsv1alpha1.TaskDownloadList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	for _, td := range list.Items {
		cm := &corev1.ConfigMap{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: td.Name}, cm)).To(Succeed())
		g.Expect(cm.Data["SIGNED_URL"]).To(Equal(td.Status.SignedURL), td.Name)
		g.Expect(td.Status.SignedURL).NotTo(BeEmpty())
	}
}

func TestRestartWhilePendingLosesNothing(t *testing.T) {
	n := objects()
	// Pending long enough (about 13 s: polls every 200 ms for the first 2 s, then after a tenth of the
	// time waited) that every object is still pending when the last of them has first been asked.
	const pending = 30
	ns := newNamespace(t)
	fake := newFake(t, pending, 20*time.Millisecond)

	first := startManager(t, "restart-1", ns, fake.URL)
	createTaskDownloads(t, ns, n)
	// Kill it once every object has been asked at least once and none is Ready yet.
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(countBy(g, ns, func(td *downloadsv1alpha1.TaskDownload) bool {
			return td.Status.Phase == downloadsv1alpha1.PhasePending
		})).To(Equal(n))
	}).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	first.Kill()
	t.Logf("killed the manager with %d pending objects after %d API calls", n, fake.TotalCalls())

	startManager(t, "restart-2", ns, fake.URL)
	waitAllReady(t, ns, n, 3*time.Minute)
	checkPublished(t, ns)
	perObject := float64(fake.TotalCalls()) / float64(n)
	t.Logf("API calls per object: %.2f (pending %d)", perObject, pending)
	NewWithT(t).Expect(perObject).To(BeNumerically("<=", pending+2))
}

func TestLeaderFailover(t *testing.T) {
	n := objects()
	ns := newNamespace(t)
	// One fake per replica, so that calls show which replica made them.
	fakeA, fakeB := newFake(t, 2, 20*time.Millisecond), newFake(t, 2, 20*time.Millisecond)
	election := []string{
		"--leader-elect", "--leader-election-namespace=" + ns,
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
	}
	a := startManager(t, "leader-a", ns, fakeA.URL, election...)
	// A takes the lease before B starts.
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(leaseHolder(ns)).NotTo(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	startManager(t, "leader-b", ns, fakeB.URL, election...)

	createTaskDownloads(t, ns, n)
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(countBy(g, ns, isReady)).To(BeNumerically(">=", n/4))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	NewWithT(t).Expect(fakeB.TotalCalls()).To(BeZero(), "only the leader calls the platform API")

	holder := leaseHolder(ns)
	killed := time.Now()
	a.Kill()
	NewWithT(t).Eventually(func() string { return leaseHolder(ns) }).WithTimeout(30*time.Second).
		WithPolling(50*time.Millisecond).Should(And(Not(BeEmpty()), Not(Equal(holder))), "the standby takes the lease")
	acquired := time.Since(killed)
	NewWithT(t).Eventually(fakeB.TotalCalls).WithTimeout(30*time.Second).WithPolling(50*time.Millisecond).
		Should(BeNumerically(">", 0), "the standby takes over")
	// Reported, not asserted (timings belong to benchmarks): the lease expires leaseDuration after the
	// standby last saw it renewed, and the standby tries every retryPeriod.
	t.Logf("standby took the lease %.1fs and called the API %.1fs after the leader was killed (lease 4s, retry 500ms)",
		acquired.Seconds(), time.Since(killed).Seconds())
	waitAllReady(t, ns, n, 3*time.Minute)
	checkPublished(t, ns)
	// Each replica has its own fake, whose tasks start pending again: calls per object run higher here
	// than against one shared platform.
	t.Logf("API calls per object: %.2f", float64(fakeA.TotalCalls()+fakeB.TotalCalls())/float64(n))
}

func TestFaultSoakConverges(t *testing.T) {
	n := objects()
	const pending = 2
	ns := newNamespace(t)
	fake := newFake(t, pending, 10*time.Millisecond)
	fake.SetFaults(0.2,
		fakepixxel.Fail(500, "internal", "injected"),
		fakepixxel.Response{HTTPStatus: 503, RetryAfter: "1"},
		fakepixxel.Response{Reset: true},
		fakepixxel.Response{Status: "ready", Delay: 1500 * time.Millisecond}, // past --request-timeout=1s
	)

	startManager(t, "soak", ns, fake.URL)
	createTaskDownloads(t, ns, n)
	waitAllReady(t, ns, n, 4*time.Minute)
	checkPublished(t, ns)
	perObject := float64(fake.TotalCalls()) / float64(n)
	t.Logf("API calls per object with 20%% faults: %.2f (%d pending + 1 ready without faults)", perObject, pending)
	// 3 useful calls at an 80 % success rate take 3.75 on average; a hot loop would take far more.
	NewWithT(t).Expect(perObject).To(BeNumerically("<=", 5.5))
}
