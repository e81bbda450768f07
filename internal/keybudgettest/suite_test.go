package keybudgettest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managertest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/suite"
)

const (
	// keyLimit is the calls per second the fake platform accepts from each key.
	keyLimit = 20
	// maxPoll is the manager's --max-poll-interval, and so the breaker's probe interval.
	maxPoll = 2 * time.Second
	latency = 50 * time.Millisecond
)

var (
	logs      = &managertest.LogBuffer{}
	k8s       client.Client
	fake      *fakepixxel.Server
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.Level(zapcore.Level(-2))))
	os.Exit(suite.Main(m, setup))
}

func setup(e *suite.Env) error {
	fake = e.Fake
	fake.SetDefaultPending(1)
	fake.SetLatency(latency)
	fake.SetKeyLimit(keyLimit)

	// The manager's defaults, but for short poll intervals so that the rate limit, not the poll
	// schedule, sets the pace.
	o := manager.DefaultOptions()
	o.APIURL = fake.URL
	o.PollInterval, o.MaxPollInterval = 100*time.Millisecond, maxPoll
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	var err error
	k8s, err = e.StartLoadManager(nil, o, logs, keyAlone, keyBusy, keyOther, keyRevoked, keyRenewed)
	return err
}

// The API keys of the tests; the logs must not contain them.
const (
	keyAlone   = "pk_alone_0d3b7c"
	keyBusy    = "pk_busy_81f2aa"
	keyOther   = "pk_other_5e9c41"
	keyRevoked = "pk_revoked_77ab02"
	keyRenewed = "pk_renewed_c4d1e9"
)

// callsWith returns when the fake received each call made with apiKey, oldest first.
func callsWith(apiKey string) []time.Time {
	var times []time.Time
	for _, r := range fake.Requests() {
		if r.Authorization == apiKey {
			times = append(times, r.Time)
		}
	}
	return times
}

// newNamespace creates a namespace whose TaskDownloads take the API key apiKey.
func newNamespace(t *testing.T, apiKey string) string {
	t.Helper()
	g := NewWithT(t)
	ns := fmt.Sprintf("budget-%d", nsCounter.Add(1))
	g.Expect(load.Namespace(context.Background(), k8s, ns, apiKey)).To(Succeed())
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

// waitAllReady waits until the namespace's n TaskDownloads are Ready and returns when they were.
func waitAllReady(t *testing.T, ns string, n int, timeout time.Duration) time.Time {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(countBy(g, ns, isReady)).To(Equal(n))
	}).WithTimeout(timeout).WithPolling(100 * time.Millisecond).Should(Succeed())
	return time.Now()
}
