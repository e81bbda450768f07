package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pixxel-space/taskdownload-operator/internal/injection"
)

// injectionFlags are the flags of the injecting admission webhook (internal/injection).
type injectionFlags struct {
	enabled           bool
	image, pullPolicy string
	sizeLimit         string
	resources         string
	port              int
	certDir           string
	certRotation      bool
	certSecret        string
	webhookConfig     string
	service           string
	extraDNSNames     string
	env               []corev1.EnvVar
}

func bindInjectionFlags(fs *flag.FlagSet) *injectionFlags {
	f := &injectionFlags{}
	fs.BoolVar(&f.enabled, "enable-injection", false, "Serve the injecting admission webhook: pods labelled "+
		"downloads.pixxel.space/inject=true get the scheduling gate, fetch init container and volumes of the "+
		"TaskDownloads named in their annotation downloads.pixxel.space/taskdownloads. Needs --enable-scheduling-gates.")
	fs.StringVar(&f.image, "injection-image", "", "Image of the injected fetch init containers: the manager's own.")
	fs.StringVar(&f.pullPolicy, "injection-image-pull-policy", string(corev1.PullIfNotPresent),
		"imagePullPolicy of the injected fetch init containers.")
	fs.StringVar(&f.sizeLimit, "injection-size-limit", injection.DefaultSizeLimit,
		"sizeLimit of each injected download's emptyDir, unless the pod's downloads.pixxel.space/size-limit says otherwise.")
	fs.StringVar(&f.resources, "injection-resources", injection.DefaultResources, "Resources of each injected fetch "+
		"init container as JSON, unless the pod's downloads.pixxel.space/fetch-resources says otherwise.")
	fs.IntVar(&f.port, "webhook-port", 9443, "Port the webhook server listens on.")
	fs.StringVar(&f.certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs",
		"Directory holding the webhook server's tls.crt and tls.key.")
	fs.BoolVar(&f.certRotation, "injection-cert-rotation", true, "Issue and renew the webhook's serving "+
		"certificate in --injection-cert-secret (mounted at --webhook-cert-dir) and keep the caBundle of "+
		"--injection-webhook-configuration current. Turn off when cert-manager provides the certificate.")
	fs.StringVar(&f.certSecret, "injection-cert-secret", injection.DefaultCertSecret,
		"Secret, in the manager's namespace ($POD_NAMESPACE), that holds the webhook's CA and serving certificate.")
	fs.StringVar(&f.webhookConfig, "injection-webhook-configuration", injection.DefaultWebhookConfiguration,
		"MutatingWebhookConfiguration whose caBundle the certificate rotation keeps current.")
	fs.StringVar(&f.service, "injection-service", injection.DefaultService,
		"Service in front of the webhook, in the manager's namespace: the serving certificate's name.")
	fs.Func("injection-env", "NAME=VALUE added to the environment of every injected fetch init container, "+
		"such as HTTPS_PROXY or NO_PROXY (repeatable). Anyone who can read the pods sees it: no credentials.",
		func(s string) error {
			e, err := injection.ParseEnv(s)
			f.env = append(f.env, e)
			return err
		})
	fs.StringVar(&f.extraDNSNames, "injection-cert-extra-dns-names", "", "Comma-separated extra DNS names of the "+
		"serving certificate, for a webhook configuration that calls a URL rather than the Service.")
	return f
}

// options returns the webhook's setup, or nil when it is off.
func (f *injectionFlags) options(namespace string, tlsOpts []func(*tls.Config)) (*injection.SetupOptions, error) {
	if !f.enabled {
		return nil, nil
	}
	size, err := resource.ParseQuantity(f.sizeLimit)
	if err != nil || size.Sign() <= 0 {
		return nil, fmt.Errorf("--injection-size-limit %q: not a positive quantity such as 10Gi", f.sizeLimit)
	}
	resources, err := injection.ParseResources(f.resources)
	if err != nil {
		return nil, fmt.Errorf("--injection-resources: %w", err)
	}
	o := &injection.SetupOptions{
		Config: injection.Config{
			Image: f.image, ImagePullPolicy: corev1.PullPolicy(f.pullPolicy), SizeLimit: size, Resources: resources,
			Env: f.env,
		},
		Port: f.port, CertDir: f.certDir, TLSOpts: tlsOpts, OwnNamespace: namespace,
	}
	if f.certRotation {
		if namespace == "" {
			return nil, errors.New("--injection-cert-rotation needs $POD_NAMESPACE, the namespace of its Secret and Service")
		}
		o.Rotation = &injection.Rotation{
			Secret:               types.NamespacedName{Namespace: namespace, Name: f.certSecret},
			WebhookConfiguration: f.webhookConfig,
			DNSName:              fmt.Sprintf("%s.%s.svc", f.service, namespace),
		}
		o.Rotation.ExtraDNSNames = injection.List(f.extraDNSNames)
	}
	return o, nil
}
