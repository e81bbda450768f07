package tenancytest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managertest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/suite"
)

const (
	// maxPoll is the manager's --max-poll-interval, the revoked-key breaker's probe interval: long
	// enough that a test of a few seconds sees at most the first call and no probe.
	maxPoll = time.Minute
	// apiKey is the key of tests that need a working one; keyRevoked one the platform refuses.
	apiKey     = "pk_tenancy_3c1f9e20"
	keyRevoked = "pk_tenancy_revoked_a90d44"
)

var (
	cfg       *rest.Config
	k8s       client.Client
	fake      *fakepixxel.Server
	logs      = &managertest.LogBuffer{}
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.Level(zapcore.Level(-2))))
	os.Exit(suite.Main(m, setup))
}

func setup(e *suite.Env) error {
	cfg, fake = e.Config, e.Fake
	fake.SetDefaultPending(0)
	o := manager.DefaultOptions()
	o.APIURL = fake.URL
	o.PollInterval, o.MaxPollInterval = 100*time.Millisecond, maxPoll
	o.EnableSchedulingGates = true
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	// The operator runs as the ServiceAccount an installation gives it, with its RBAC and the
	// least-privilege admission policy: every test here also shows the policy lets it do its job.
	if err := installIdentity(context.Background(), e.Client, e.Config); err != nil {
		return fmt.Errorf("installing the operator's identity: %w", err)
	}
	e.Check(func() error {
		// DUMP_LOGS=1 prints the operator's log, to debug a failing test.
		if os.Getenv("DUMP_LOGS") != "" {
			fmt.Fprintln(os.Stderr, logs.String())
		}
		return nil
	})
	var err error
	k8s, err = e.StartLoadManager(operatorConfig(e.Config), o, logs, apiKey, keyRevoked)
	return err
}

// newNamespace creates a namespace whose Secret load.APIKeySecret holds key.
func newNamespace(t *testing.T, key string) string {
	t.Helper()
	ns := fmt.Sprintf("tenant-%d", nsCounter.Add(1))
	NewWithT(t).Expect(load.Namespace(context.Background(), k8s, ns, key)).To(Succeed())
	return ns
}

// callsWith returns when the fake received each call made with key, oldest first.
func callsWith(key string) []time.Time {
	var times []time.Time
	for _, r := range fake.Requests() {
		if r.Authorization == key {
			times = append(times, r.Time)
		}
	}
	return times
}
