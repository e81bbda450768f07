// Command demo runs the operator end to end on this machine: a local control plane (the same
// kube-apiserver and etcd the tests use), a local fake of the platform's download endpoint (or the
// real API when PIXXEL_API_KEY and task IDs are given), and the operator; it applies the sample
// TaskDownloads, shows them move from Pending to Ready, prints what was published and how a pod
// consumes it, and cleans up. Run it with `make demo` (KEEP=1 keeps everything running).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

const namespace = "demo"

func main() {
	keep := flag.Bool("keep", os.Getenv("KEEP") == "1", "keep everything running until Ctrl-C")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for the TaskDownloads to settle")
	flag.Parse()
	// SIGINT, SIGTERM or the end of `go run` cancel ctx; run's defers then stop what it started.
	ctx, stop := teardown.Context(context.Background())
	defer stop()
	if err := run(ctx, *keep, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, keep bool, timeout time.Duration) error {
	workDir, err := os.MkdirTemp("", "taskdownload-demo-")
	if err != nil {
		return err
	}
	logPath := filepath.Join(workDir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))

	step("Starting a local control plane (kube-apiserver + etcd, with the TaskDownload CRD)")
	env, cfg, err := envtestutil.Start()
	if err != nil {
		return err
	}
	defer func() {
		step("Cleaning up")
		_ = env.Stop()
		_ = os.RemoveAll(workDir) // the kubeconfig and logs are of no use once the control plane is gone
	}()

	o := manager.DefaultOptions()
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	p := usePlatform(&o)
	defer p.close()
	op, err := startOperator(ctx, cfg, o)
	if err != nil {
		return err
	}
	defer op.cancel()
	step("Started the operator (logs: " + logPath + ")")

	c, err := client.New(cfg, client.Options{Scheme: op.mgr.GetScheme()})
	if err != nil {
		return err
	}
	if err := demonstrate(ctx, c, p, timeout); err != nil {
		return err
	}
	if keep {
		if err := keepRunning(ctx, env, workDir); err != nil {
			return err
		}
	}
	return op.stop()
}

// platform is the download endpoint the operator calls: the real platform API, or a local fake.
type platform struct {
	apiKey string
	real   bool
	fake   *fakepixxel.Server
}

// usePlatform points o at the real platform API when PIXXEL_API_KEY is set, else at a local fake whose
// tasks are pending three times, then ready.
func usePlatform(o *manager.Options) platform {
	p := platform{apiKey: "demo-api-key", real: os.Getenv("PIXXEL_API_KEY") != ""}
	if p.real {
		p.apiKey = os.Getenv("PIXXEL_API_KEY")
		if u := os.Getenv("PIXXEL_API_URL"); u != "" {
			o.APIURL = u
		}
		step("Using the real platform API at " + o.APIURL)
		return p
	}
	p.fake = fakepixxel.New()
	p.fake.RequireAPIKey(p.apiKey)
	p.fake.SetLatency(200 * time.Millisecond)
	p.fake.SetDefaultPending(3)
	o.APIURL = p.fake.URL
	o.PollInterval, o.MaxPollInterval = 700*time.Millisecond, 5*time.Second
	step("Started a local fake of the platform's download endpoint at " + p.fake.URL +
		" (each task is pending 3 times, then ready)")
	return p
}

// close stops the fake, if there is one.
func (p platform) close() {
	if p.fake != nil {
		p.fake.Close()
	}
}

// operator is the manager, running in this process until cancel.
type operator struct {
	mgr    ctrl.Manager
	cancel context.CancelFunc
	done   chan error
}

// startOperator builds the manager and starts it.
func startOperator(ctx context.Context, cfg *rest.Config, o manager.Options) (*operator, error) {
	mgr, err := manager.New(cfg, o)
	if err != nil {
		return nil, err
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	op := &operator{mgr: mgr, cancel: cancel, done: make(chan error, 1)}
	go func() { op.done <- mgr.Start(mgrCtx) }()
	return op, nil
}

// stop stops the manager and returns its error, unless it ended because it was stopped.
func (op *operator) stop() error {
	op.cancel()
	if err := <-op.done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// demonstrate creates the demo's objects, shows them settle, and prints what was published.
func demonstrate(ctx context.Context, c client.Client, p platform, timeout time.Duration) error {
	tds, err := createObjects(ctx, c, p.apiKey, p.real)
	if err != nil {
		return err
	}

	step("Watching the TaskDownloads (kubectl get td -n demo)")
	if err := watch(ctx, c, timeout); err != nil {
		return err
	}
	return showPublished(ctx, c, tds)
}

// keepRunning writes a kubeconfig for the control plane, says how to use it, and waits for Ctrl-C.
func keepRunning(ctx context.Context, env *envtest.Environment, workDir string) error {
	kubeconfig, err := envtestutil.WriteKubeconfig(env, workDir, "demo")
	if err != nil {
		return err
	}
	step("Everything keeps running until Ctrl-C. In another shell:")
	fmt.Printf("\n    export KUBECONFIG=%s\n    kubectl get td -n %s\n    kubectl describe td -n %s\n\n",
		kubeconfig, namespace, namespace)
	<-ctx.Done()
	return nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }
