// Package suite is the one TestMain of the envtest suites (internal/controllertest, internal/keybudgettest,
// internal/tenancytest, internal/schedulinggate): a real kube-apiserver and etcd with the operator's CRDs, a fake platform, and
// a client, started once per package; whatever the suite starts on top (the manager) is stopped with them.
package suite

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managertest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

// Env is what a suite's tests share.
type Env struct {
	// Environment is the running envtest: its WebhookInstallOptions say where to serve webhooks.
	Environment *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client uses Config and the operator's scheme.
	Client client.Client
	// Fake is the platform's download endpoint.
	Fake *fakepixxel.Server

	stops  []func()
	checks []func() error
}

// Defer stops f after the tests, before what was started earlier.
func (e *Env) Defer(f func()) { e.stops = append(e.stops, f) }

// Check adds a check of what the whole suite left behind (its logs, say), run after the tests: an
// error fails the package.
func (e *Env) Check(f func() error) { e.checks = append(e.checks, f) }

// StartLoadManager starts the operator with o the way the load suites do (internal/keybudgettest,
// internal/tenancytest): its client and the returned administrator's client unthrottled, so that the
// operator's own limits, not client-go's, set the pace; stopped after the tests. The operator uses
// managerConfig (an identity of its own, say), or the administrator's Config when nil. After the
// tests, the suite fails if logs holds any of keys.
func (e *Env) StartLoadManager(managerConfig *rest.Config, o manager.Options, logs fmt.Stringer, keys ...string) (client.Client, error) {
	if managerConfig == nil {
		managerConfig = e.Config
	}
	c, err := client.New(envtestutil.Unthrottled(e.Config), client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return nil, err
	}
	stop, err := managertest.Start(envtestutil.Unthrottled(managerConfig), o)
	if err != nil {
		return nil, err
	}
	e.Defer(stop)
	e.Check(func() error {
		for _, key := range keys {
			if strings.Contains(logs.String(), key) {
				return fmt.Errorf("the operator's logs contain the API key %q", key)
			}
		}
		return nil
	})
	return c, nil
}

// Main starts the API server, the fake and the client, lets setup configure the suite (start the
// manager, create namespaces), runs the tests and the checks, and stops everything, newest first. It
// returns the exit code for os.Exit: func TestMain(m *testing.M) { os.Exit(suite.Main(m, setup)) }.
// SIGINT, SIGTERM or the end of `go test` stop the control plane too (internal/testsupport/teardown).
// Options adjust the environment before it starts (envtestutil.Start).
func Main(m *testing.M, setup func(*Env) error, opts ...func(*envtest.Environment)) int {
	teardown.Start()
	e := &Env{}
	defer func() {
		for _, stop := range slices.Backward(e.stops) {
			stop()
		}
	}()
	if err := e.start(setup, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	for _, check := range e.checks {
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	return code
}

func (e *Env) start(setup func(*Env) error, opts []func(*envtest.Environment)) error {
	env, cfg, err := envtestutil.Start(opts...)
	if err != nil {
		return err
	}
	e.Defer(func() { _ = env.Stop() })
	e.Environment, e.Config = env, cfg
	e.Fake = fakepixxel.New()
	e.Defer(e.Fake.Close)
	if e.Client, err = client.New(cfg, client.Options{Scheme: manager.NewScheme()}); err != nil {
		return err
	}
	return setup(e)
}
