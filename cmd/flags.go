package main

import (
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/metricsauth"
	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
)

// managerFlags are the flags that do not set manager.Options directly: controller-runtime's
// (metrics, probes, pprof, leader election), the Kubernetes client's limits, and the namespaces.
type managerFlags struct {
	metricsAddr, probeAddr, watchNamespaces   string
	pprofAddr, leaderElectionNamespace        string
	leaseDuration, renewDeadline, retryPeriod time.Duration
	metricsCertPath, metricsCertName          string
	metricsCertKey                            string
	enableLeaderElection, secureMetrics       bool
	enableHTTP2                               bool
	kubeQPS                                   float64
	kubeBurst                                 int
}

// bindManagerFlags defines the manager's flags on fs: those of o, with o's values as their defaults,
// and the rest, returned.
func bindManagerFlags(fs *flag.FlagSet, o *manager.Options) *managerFlags {
	f := &managerFlags{}
	fs.StringVar(&o.APIURL, "api-url", o.APIURL, "Base URL of the platform API.")
	fs.DurationVar(&o.PollInterval, "poll-interval", o.PollInterval,
		"Shortest delay between polls of a pending package; polls are spaced by a tenth of the time waited, "+
			"up to --max-poll-interval.")
	fs.DurationVar(&o.MaxPollInterval, "max-poll-interval", o.MaxPollInterval,
		"Longest delay between polls and retries.")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "Timeout of one platform API call.")
	fs.DurationVar(&o.DefaultURLTTL, "default-url-ttl", o.DefaultURLTTL,
		"Lifetime assumed for signed URLs whose expiry cannot be read from the URL; replaced after two thirds of it.")
	fs.DurationVar(&o.MinURLLifetime, "min-url-lifetime", o.MinURLLifetime,
		"A signed URL already expired, or expiring within this long of being handed out, is not published "+
			"(reason URLExpired); a new one is asked for after backoff.")
	fs.Float64Var(&o.APIQPS, "api-qps", o.APIQPS, "Most platform API calls per second with one API key, shared by "+
		"the TaskDownloads using it; each key's rate starts lower and is learned from the platform's 429 answers.")
	fs.IntVar(&o.APIBurst, "api-burst", o.APIBurst, "Most platform API calls at once with one API key.")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles,
		"TaskDownloads reconciled at once.")
	fs.Float64Var(&f.kubeQPS, "kube-api-qps", manager.DefaultKubeAPIQPS, "Kubernetes API requests per second.")
	fs.IntVar(&f.kubeBurst, "kube-api-burst", manager.DefaultKubeAPIBurst,
		"Burst of Kubernetes API requests above --kube-api-qps.")
	fs.Var((*tlsroots.Files)(&o.CAFiles), "ca-file", "For the platform API: "+tlsroots.Usage)
	fs.StringVar(&f.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches all namespaces.")
	fs.BoolVar(&o.EnableSchedulingGates, "enable-scheduling-gates", o.EnableSchedulingGates,
		"Remove the scheduling gate downloads.pixxel.space/<name> from pods once TaskDownload <name> is Ready "+
			"(needs get/list/watch/patch on pods).")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", "", "The address to serve Go's pprof profiles on; empty disables it.")
	fs.BoolVar(&f.enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	fs.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; defaults to $POD_NAMESPACE, else the pod's namespace.")
	fs.DurationVar(&f.leaseDuration, "leader-elect-lease-duration", manager.DefaultLeaseDuration,
		"How long standby replicas wait before taking over a lease that is not renewed.")
	fs.DurationVar(&f.renewDeadline, "leader-elect-renew-deadline", manager.DefaultRenewDeadline,
		"How long the leader retries renewing its lease before giving up leadership.")
	fs.DurationVar(&f.retryPeriod, "leader-elect-retry-period", manager.DefaultRetryPeriod,
		"How often replicas try to acquire or renew the lease.")
	fs.BoolVar(&f.secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	fs.StringVar(&f.metricsCertPath, "metrics-cert-path", "",
		"The directory that contains the metrics server certificate.")
	fs.StringVar(&f.metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	fs.StringVar(&f.metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	fs.BoolVar(&f.enableHTTP2, "enable-http2", false, "If set, HTTP/2 will be enabled for the metrics server.")
	return f
}

// tlsOptions are the metrics and webhook servers' TLS settings.
func (f *managerFlags) tlsOptions() []func(*tls.Config) {
	var tlsOpts []func(*tls.Config)
	if !f.enableHTTP2 {
		// HTTP/2 stays off by default: Stream Cancellation and Rapid Reset CVEs
		// (GHSA-qppj-fm5r-hxr3, GHSA-4374-p667-p6c8).
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	return tlsOpts
}

// namespaces are --watch-namespaces, without blanks.
func (f *managerFlags) namespaces() []string {
	var out []string
	for ns := range strings.SplitSeq(f.watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// managerOptions are controller-runtime's options: metrics, probes, pprof and leader election.
func (f *managerFlags) managerOptions(tlsOpts []func(*tls.Config)) ctrl.Options {
	metricsOpts := metricsserver.Options{BindAddress: f.metricsAddr, SecureServing: f.secureMetrics, TLSOpts: tlsOpts}
	if f.secureMetrics {
		metricsOpts.FilterProvider = metricsauth.WithAuthenticationAndAuthorization
	}
	if f.metricsCertPath != "" {
		metricsOpts.CertDir, metricsOpts.CertName = f.metricsCertPath, f.metricsCertName
		metricsOpts.KeyName = f.metricsCertKey
	}
	leaderElectionNamespace := f.leaderElectionNamespace
	if leaderElectionNamespace == "" {
		// Out of a pod there is no service account namespace file to read; the Deployments set
		// POD_NAMESPACE from the downward API so that the Lease lands in the operator's namespace either way.
		leaderElectionNamespace = os.Getenv("POD_NAMESPACE")
	}
	return ctrl.Options{
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        f.probeAddr,
		PprofBindAddress:              f.pprofAddr,
		LeaderElection:                f.enableLeaderElection,
		LeaderElectionID:              "taskdownload-operator.pixxel.space",
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaseDuration:                 &f.leaseDuration,
		RenewDeadline:                 &f.renewDeadline,
		RetryPeriod:                   &f.retryPeriod,
	}
}
