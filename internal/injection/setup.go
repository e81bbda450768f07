package injection

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The defaults of the manager's flags naming the webhook's objects: those config/components/injection
// installs under config/default's name prefix.
const (
	DefaultCertSecret           = "taskdownload-operator-webhook-cert"
	DefaultWebhookConfiguration = "taskdownload-operator-injection"
	DefaultService              = "taskdownload-operator-webhook"
)

// SetupOptions configures the webhook.
type SetupOptions struct {
	// Config is what every injected pod gets.
	Config Config
	// Port and CertDir are the webhook server's; CertDir holds tls.crt and tls.key.
	Port    int
	CertDir string
	// TLSOpts tune the server's TLS (HTTP/2 stays off unless asked for, as for metrics).
	TLSOpts []func(*tls.Config)
	// Rotation, when set, makes the manager issue and renew the serving certificate itself, in a Secret
	// mounted at CertDir, and keep the MutatingWebhookConfiguration's caBundle up to date. Without it
	// the certificate comes from elsewhere (cert-manager and its CA injector).
	Rotation *Rotation
	// Recorder reports refused pods on their TaskDownloads.
	Recorder events.EventRecorder
	// OwnNamespace is the operator's namespace, whose pods are never mutated.
	OwnNamespace string
	// Host is the address the webhook server listens on; empty means all.
	Host string
	// Namespaces are the operator's (--watch-namespaces); empty means all.
	Namespaces []string
}

// Rotation names the objects the certificate rotation keeps up to date.
type Rotation struct {
	// Secret holds the CA and the serving certificate; the manager's pod mounts it at CertDir.
	Secret types.NamespacedName
	// WebhookConfiguration is the MutatingWebhookConfiguration whose caBundle is kept current.
	WebhookConfiguration string
	// DNSName is the webhook Service's name the API server connects to: <service>.<namespace>.svc.
	DNSName string
	// ExtraDNSNames are further names of the serving certificate, for a webhook configuration that
	// calls a URL instead of the Service.
	ExtraDNSNames []string
}

// Setup serves the webhook from mgr: on every replica, not only the leader, once the serving
// certificate is in place. The manager's readiness waits for it, so that the Service sends admissions
// only to replicas that can answer. BypassReporter is set up apart, with the scheduling gate controller
// whose pod cache it reads.
func Setup(mgr ctrl.Manager, o SetupOptions) error {
	server := webhook.NewServer(webhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: o.TLSOpts})
	server.Register(Path, &webhook.Admission{Handler: &Webhook{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Decoder:   admission.NewDecoder(mgr.GetScheme()),
		Recorder:  o.Recorder,
		Config:    o.Config, OwnNamespace: o.OwnNamespace, Namespaces: o.Namespaces,
	}})
	certsReady := make(chan struct{})
	if o.Rotation == nil {
		close(certsReady)
	} else if err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      o.Rotation.Secret,
		CertDir:        o.CertDir,
		CAName:         "taskdownload-operator-ca",
		CAOrganization: "taskdownload-operator",
		DNSName:        o.Rotation.DNSName,
		ExtraDNSNames:  o.Rotation.ExtraDNSNames,
		IsReady:        certsReady,
		Webhooks:       []rotator.WebhookInfo{{Name: o.Rotation.WebhookConfiguration, Type: rotator.Mutating}},
		// Every replica serves the webhook, so every replica needs the certificate at start; they
		// write the same Secret with optimistic concurrency.
		RequireLeaderElection: false,
	}); err != nil {
		return fmt.Errorf("adding the webhook certificate rotation: %w", err)
	}
	if err := mgr.Add(&afterCerts{Server: server, ready: certsReady}); err != nil {
		return fmt.Errorf("adding the webhook server: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return fmt.Errorf("adding the webhook readiness check: %w", err)
	}
	return nil
}

// afterCerts starts the webhook server once its certificate files exist: the server reads them at start.
type afterCerts struct {
	webhook.Server
	ready <-chan struct{}
}

func (s *afterCerts) Start(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	return s.Server.Start(ctx)
}

// NeedLeaderElection is false: every replica behind the Service answers admissions.
func (s *afterCerts) NeedLeaderElection() bool { return false }
