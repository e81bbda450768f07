// Package manager wires the controller-runtime manager, the platform API client and the TaskDownload
// controller together. cmd/main.go fills Options from flags; the integration tests use the same wiring.
package manager

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/controller"
	"github.com/pixxel-space/taskdownload-operator/internal/injection"
	"github.com/pixxel-space/taskdownload-operator/internal/metrics"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/recorder"
	"github.com/pixxel-space/taskdownload-operator/internal/schedulinggate"
	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
)

// Options configures the operator.
type Options struct {
	// APIURL is the platform API's base URL.
	APIURL string
	// PollInterval is the shortest delay between polls of a pending package, which are spaced by a
	// tenth of the time waited so far, with jitter, up to MaxPollInterval; MaxPollInterval is also the
	// retry delay for answers unlikely to change soon (401, 403, 404).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// RequestTimeout bounds one call to the platform API.
	RequestTimeout time.Duration
	// DefaultURLTTL is the lifetime assumed for signed URLs whose expiry cannot be read from the URL;
	// such URLs are replaced after two thirds of it.
	DefaultURLTTL time.Duration
	// MinURLLifetime is the least time a signed URL must have left when it is handed out to be
	// published; one already expired or expiring sooner is refused (URLExpired) and asked for again.
	MinURLLifetime time.Duration
	// APIQPS and APIBurst are the most calls per second, and at once, made with one API key (each key
	// has its own budget, shared by the TaskDownloads using it; internal/budget). Within that ceiling the
	// rate is learned from the platform's 429 answers.
	APIQPS   float64
	APIBurst int
	// MaxConcurrentReconciles is the number of TaskDownloads reconciled at once.
	MaxConcurrentReconciles int
	// WatchNamespaces restricts the operator to these namespaces; empty means all.
	WatchNamespaces []string
	// EnableSchedulingGates runs the controller that removes downloads.pixxel.space/<name> scheduling
	// gates from pods once TaskDownload <name> is Ready. Off, no pod is watched or cached, and the
	// operator needs no RBAC for pods.
	EnableSchedulingGates bool
	// Injection, when set, serves the injecting admission webhook (--enable-injection): pods labelled
	// downloads.pixxel.space/inject=true get the gate, fetch init container and volumes of the
	// TaskDownloads they name. It needs EnableSchedulingGates, which releases the pods.
	Injection *injection.SetupOptions
	// CAFiles are PEM files of CA certificates trusted for the platform API in addition to the system's
	// roots (the image's embedded ones); see package tlsroots.
	CAFiles []string
	// HTTPClient, if set, is used for platform API calls (tests use it to inject faults).
	HTTPClient *http.Client
	// Clock, if set, replaces the real clock for URL lifetimes (tests use it to move time on).
	Clock clock.PassiveClock
	// Manager holds controller-runtime's own options: metrics, probes, leader election.
	Manager ctrl.Options
}

// The defaults of the flags cmd/main.go passes on outside Options: the Kubernetes client's limits and
// leader election's timing. With DefaultOptions they are the one home of every default; a test
// (defaults_test.go) fails when dist/chart/values.yaml, config/manager/manager.yaml or the README's flag
// table says otherwise.
const (
	DefaultKubeAPIQPS    = 300
	DefaultKubeAPIBurst  = 600
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	// DefaultMinURLLifetime is --min-url-lifetime's default: a URL with less left than this could not
	// be downloaded from by the pods it is published for.
	DefaultMinURLLifetime = 5 * time.Second
)

// DefaultOptions returns the defaults documented for the manager's flags.
func DefaultOptions() Options {
	return Options{
		APIURL:                  pixxel.DefaultBaseURL,
		PollInterval:            10 * time.Second,
		MaxPollInterval:         5 * time.Minute,
		RequestTimeout:          pixxel.DefaultTimeout,
		DefaultURLTTL:           time.Hour,
		MinURLLifetime:          DefaultMinURLLifetime,
		APIQPS:                  200,
		APIBurst:                20,
		MaxConcurrentReconciles: 64,
	}
}

// Validate reports flag values that cannot work.
func (o Options) Validate() error {
	var errs []error
	if o.PollInterval <= 0 {
		errs = append(errs, errors.New("--poll-interval must be positive"))
	}
	if o.MaxPollInterval < o.PollInterval {
		errs = append(errs, errors.New("--max-poll-interval must not be shorter than --poll-interval"))
	}
	if o.DefaultURLTTL <= 0 {
		errs = append(errs, errors.New("--default-url-ttl must be positive"))
	}
	if o.MinURLLifetime < 0 {
		errs = append(errs, errors.New("--min-url-lifetime must not be negative"))
	}
	if o.RequestTimeout <= 0 {
		errs = append(errs, errors.New("--request-timeout must be positive"))
	}
	if o.APIQPS <= 0 || o.APIBurst < 1 {
		errs = append(errs, errors.New("--api-qps must be positive and --api-burst at least 1"))
	}
	if o.Injection != nil && !o.EnableSchedulingGates {
		errs = append(errs, errors.New("--enable-injection requires --enable-scheduling-gates: the injected "+
			"scheduling gate holds each pod until its download is Ready, and only that controller removes it"))
	}
	if o.Injection != nil && o.Injection.Config.Image == "" {
		errs = append(errs, errors.New("--enable-injection requires --injection-image, the image that runs /fetch "+
			"(the manager's own)"))
	}
	if o.MaxConcurrentReconciles < 1 {
		errs = append(errs, errors.New("--max-concurrent-reconciles must be at least 1"))
	}
	return errors.Join(errs...)
}

// NewScheme returns a scheme with the built-in types and TaskDownload.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(downloadsv1alpha1.AddToScheme(s))
	return s
}

// newRecorder returns the controller's event recorder, added to mgr so that it runs with it. It is
// internal/recorder rather than controller-runtime's GetEventRecorder: see that package for why.
func newRecorder(mgr ctrl.Manager) (*recorder.Recorder, error) {
	// Events are a built-in type: protobuf costs the API server less to decode than JSON, as
	// controller-runtime already uses for ConfigMaps and Secrets (a thousand objects getting Ready
	// write a thousand events).
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	evClient, err := eventsv1client.NewForConfigAndClient(cfg, mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("creating the events client: %w", err)
	}
	hostname, _ := os.Hostname()
	rec := recorder.New(&events.EventSinkImpl{Interface: evClient}, mgr.GetScheme(), controllerName, hostname,
		recorder.Options{
			Logger: mgr.GetLogger().WithName("events"),
			OnDrop: func(reason string) { metrics.EventsDropped.WithLabelValues(reason).Inc() },
		})
	if err := mgr.Add(rec); err != nil {
		return nil, fmt.Errorf("adding the event recorder: %w", err)
	}
	return rec, nil
}

// controllerName reports the operator's events.
const controllerName = "taskdownload-controller"

// New builds a manager running the TaskDownload controller.
func New(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	api, err := newAPIClient(o)
	if err != nil {
		return nil, err
	}
	mo := managerOptions(o)
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	rec, err := newRecorder(mgr)
	if err != nil {
		return nil, err
	}
	if err := setupControllers(mgr, o, api, rec, mo.Cache.DefaultNamespaces); err != nil {
		return nil, err
	}
	if err := metrics.RegisterObjectCollector(mgr.GetClient(), mgr.Elected()); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return mgr, nil
}

// newAPIClient returns the platform API client: o's timeout, budget per key, HTTP client and CAs,
// instrumented.
func newAPIClient(o Options) (*pixxel.Client, error) {
	clientOpts := []pixxel.Option{
		pixxel.WithTimeout(o.RequestTimeout),
		pixxel.WithBudget(budget.New(budget.Options{
			MaxRate: o.APIQPS, MaxBurst: o.APIBurst, ProbeInterval: o.MaxPollInterval, Metrics: metrics.KeyMetrics{},
		})),
	}
	if o.HTTPClient != nil {
		clientOpts = append(clientOpts, pixxel.WithHTTPClient(o.HTTPClient))
	}
	roots, err := tlsroots.Pool(o.CAFiles...)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	clientOpts = append(clientOpts, pixxel.WithRootCAs(roots))
	clientOpts = append(clientOpts, pixxel.WithTransportWrapper(metrics.InstrumentTransport))
	api, err := pixxel.New(o.APIURL, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("--api-url: %w", err)
	}
	return api, nil
}

// managerOptions are o.Manager with the scheme, and the cache limited to the watched namespaces and
// to what the controllers need.
func managerOptions(o Options) ctrl.Options {
	mo := o.Manager
	if mo.Scheme == nil {
		mo.Scheme = NewScheme()
	}
	if len(o.WatchNamespaces) > 0 {
		mo.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.WatchNamespaces {
			mo.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mo.Cache = controller.ManagerCacheOptions(mo.Cache)
	if o.EnableSchedulingGates {
		mo.Cache = schedulinggate.CacheOptions(mo.Cache)
	}
	return mo
}

// setupControllers adds the TaskDownload controller to mgr and, as o asks, the scheduling gate
// controller and the injecting webhook.
func setupControllers(mgr ctrl.Manager, o Options, api *pixxel.Client, rec *recorder.Recorder,
	namespaces map[string]cache.Config) error {
	r := &controller.TaskDownloadReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Scheme:          mgr.GetScheme(),
		Recorder:        rec,
		Pixxel:          api,
		PollInterval:    o.PollInterval,
		MaxPollInterval: o.MaxPollInterval,
		DefaultURLTTL:   o.DefaultURLTTL,
		MinURLLifetime:  o.MinURLLifetime,
		Clock:           o.Clock,
	}
	if err := r.SetupWithManager(mgr, controller.SetupOptions{
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		DefaultNamespaces:       namespaces,
	}); err != nil {
		return fmt.Errorf("setting up controller: %w", err)
	}
	if o.EnableSchedulingGates {
		gates := &schedulinggate.Reconciler{Recorder: rec}
		if err := gates.SetupWithManager(mgr, schedulinggate.SetupOptions{
			MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		}); err != nil {
			return fmt.Errorf("setting up the scheduling gate controller: %w", err)
		}
	}
	if o.Injection != nil {
		io := *o.Injection
		io.Recorder, io.Namespaces = rec, o.WatchNamespaces
		if err := injection.Setup(mgr, io); err != nil {
			return fmt.Errorf("setting up the injecting webhook: %w", err)
		}
		if err := (&injection.BypassReporter{Recorder: rec}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the injection bypass report: %w", err)
		}
	}
	return nil
}
