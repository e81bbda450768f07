/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command manager runs the TaskDownload operator.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/metricsauth"
	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
	"github.com/pixxel-space/taskdownload-operator/internal/version"
)

var setupLog = ctrl.Log.WithName("setup")

func main() {
	o := manager.DefaultOptions()
	var (
		metricsAddr, probeAddr, watchNamespaces   string
		pprofAddr, leaderElectionNamespace        string
		leaseDuration, renewDeadline, retryPeriod time.Duration
		metricsCertPath, metricsCertName          string
		metricsCertKey                            string
		enableLeaderElection, secureMetrics       bool
		enableHTTP2                               bool
		kubeQPS                                   float64
		kubeBurst                                 int
	)
	flag.StringVar(&o.APIURL, "api-url", o.APIURL, "Base URL of the platform API.")
	flag.DurationVar(&o.PollInterval, "poll-interval", o.PollInterval,
		"Shortest delay between polls of a pending package; polls are spaced by a tenth of the time waited, "+
			"up to --max-poll-interval.")
	flag.DurationVar(&o.MaxPollInterval, "max-poll-interval", o.MaxPollInterval,
		"Longest delay between polls and retries.")
	flag.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "Timeout of one platform API call.")
	flag.DurationVar(&o.DefaultURLTTL, "default-url-ttl", o.DefaultURLTTL,
		"Lifetime assumed for signed URLs whose expiry cannot be read from the URL; replaced after two thirds of it.")
	flag.DurationVar(&o.MinURLLifetime, "min-url-lifetime", o.MinURLLifetime,
		"A signed URL already expired, or expiring within this long of being handed out, is not published "+
			"(reason URLExpired); a new one is asked for after backoff.")
	flag.Float64Var(&o.APIQPS, "api-qps", o.APIQPS, "Most platform API calls per second with one API key, shared by "+
		"the TaskDownloads using it; each key's rate starts lower and is learned from the platform's 429 answers.")
	flag.IntVar(&o.APIBurst, "api-burst", o.APIBurst, "Most platform API calls at once with one API key.")
	flag.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", o.MaxConcurrentReconciles,
		"TaskDownloads reconciled at once.")
	flag.Float64Var(&kubeQPS, "kube-api-qps", manager.DefaultKubeAPIQPS, "Kubernetes API requests per second.")
	flag.IntVar(&kubeBurst, "kube-api-burst", manager.DefaultKubeAPIBurst,
		"Burst of Kubernetes API requests above --kube-api-qps.")
	flag.Var((*tlsroots.Files)(&o.CAFiles), "ca-file", "For the platform API: "+tlsroots.Usage)
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch; empty watches all namespaces.")
	flag.BoolVar(&o.EnableSchedulingGates, "enable-scheduling-gates", o.EnableSchedulingGates,
		"Remove the scheduling gate downloads.pixxel.space/<name> from pods once TaskDownload <name> is Ready "+
			"(needs get/list/watch/patch on pods).")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "The address to serve Go's pprof profiles on; empty disables it.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; defaults to $POD_NAMESPACE, else the pod's namespace.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", manager.DefaultLeaseDuration,
		"How long standby replicas wait before taking over a lease that is not renewed.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", manager.DefaultRenewDeadline,
		"How long the leader retries renewing its lease before giving up leadership.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", manager.DefaultRetryPeriod,
		"How often replicas try to acquire or renew the lease.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"The directory that contains the metrics server certificate.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "If set, HTTP/2 will be enabled for the metrics server.")
	inj := bindInjectionFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String())
		return
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	// The manager's heap is mostly long-lived informer caches, and at Go's default GOGC=100 garbage may
	// grow to their size again before a collection. At 50 the peak RSS with 10,000 TaskDownloads fell
	// from 177 to 148 MiB for about 4 % more CPU (docs/benchmarks.md). GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		// HTTP/2 stays off by default: Stream Cancellation and Rapid Reset CVEs
		// (GHSA-qppj-fm5r-hxr3, GHSA-4374-p667-p6c8).
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = metricsauth.WithAuthenticationAndAuthorization
	}
	if metricsCertPath != "" {
		metricsOpts.CertDir, metricsOpts.CertName, metricsOpts.KeyName = metricsCertPath, metricsCertName, metricsCertKey
	}
	for ns := range strings.SplitSeq(watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.WatchNamespaces = append(o.WatchNamespaces, ns)
		}
	}
	if leaderElectionNamespace == "" {
		// Out of a pod there is no service account namespace file to read; the Deployments set
		// POD_NAMESPACE from the downward API so that the Lease lands in the operator's namespace either way.
		leaderElectionNamespace = os.Getenv("POD_NAMESPACE")
	}
	injection, err := inj.options(os.Getenv("POD_NAMESPACE"), tlsOpts)
	if err != nil {
		setupLog.Error(err, "Invalid injection flags")
		os.Exit(2)
	}
	o.Injection = injection
	o.Manager = ctrl.Options{
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                enableLeaderElection,
		LeaderElectionID:              "taskdownload-operator.pixxel.space",
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
	}

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(kubeQPS), kubeBurst
	mgr, err := manager.New(cfg, o)
	if err != nil {
		setupLog.Error(err, "Failed to set up manager")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("Starting manager", "version", version.String(), "apiURL", o.APIURL,
		"pollInterval", o.PollInterval, "maxPollInterval", o.MaxPollInterval, "watchNamespaces", o.WatchNamespaces,
		"schedulingGates", o.EnableSchedulingGates, "injection", o.Injection != nil)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "Failed to run manager")
		os.Exit(1)
	}
}
