package injectiontest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/injection"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
)

// TestCertificateRotation runs the webhook with the manager's own certificate rotation, as installed
// without cert-manager: it starts with an empty Secret and a webhook configuration without caBundle,
// and the API server must then reach the webhook over TLS it can verify.
func TestCertificateRotation(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	const (
		secretName = "rotation-webhook-cert"
		configName = "rotation-injection"
		label      = "rotation-test"
	)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ownNamespace, Name: secretName}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())

	port := freePort(t)
	url := "https://localhost:" + strconv.Itoa(port) + injection.Path
	config := &admissionv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: configName},
		Webhooks: []admissionv1.MutatingWebhook{{
			Name:                    "inject.downloads.pixxel.space",
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionv1.WebhookClientConfig{URL: &url},
			Rules: []admissionv1.RuleWithOperations{{
				Operations: []admissionv1.OperationType{admissionv1.Create},
				Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}},
			FailurePolicy:  ptr.To(admissionv1.Fail),
			SideEffects:    ptr.To(admissionv1.SideEffectClassNoneOnDryRun),
		}},
	}
	g.Expect(k8s.Create(ctx, config)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), config) })

	certDir := t.TempDir()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:  manager.NewScheme(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(injection.Setup(mgr, injection.SetupOptions{
		Config: injection.Config{Image: image, SizeLimit: resource.MustParse("1Gi")},
		Host:   "127.0.0.1", Port: port, CertDir: certDir,
		Rotation: &injection.Rotation{
			Secret:               types.NamespacedName{Namespace: ownNamespace, Name: secretName},
			WebhookConfiguration: configName,
			DNSName:              "localhost",
		},
		Recorder: events.NewFakeRecorder(100),
	})).To(Succeed())
	mgrCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	go mountSecret(mgrCtx, client.ObjectKeyFromObject(secret), certDir)

	// The Secret gets a CA and a serving certificate for the Service's name, and the webhook
	// configuration that CA.
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		g.Expect(secret.Data).To(HaveKey("ca.crt"))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(config), config)).To(Succeed())
		g.Expect(config.Webhooks[0].ClientConfig.CABundle).To(Equal(secret.Data["ca.crt"]))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	cert := parseCert(g, secret.Data["tls.crt"])
	g.Expect(cert.DNSNames).To(ContainElement("localhost"))
	g.Expect(cert.NotAfter).To(BeTemporally(">", time.Now().Add(300*24*time.Hour)))

	// The API server reaches the webhook with it.
	ns := namespace(t)
	g.Expect(k8s.Create(ctx, taskDownload(ns, "scene-42", &downloadsv1alpha1.Target{}))).To(Succeed())
	g.Eventually(func(g Gomega) {
		pod, err := podFromTemplate(ctx, ns, map[string]string{label: "true", downloadsv1alpha1.LabelInject: "true"},
			map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Spec.InitContainers).To(HaveLen(1))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// A certificate that is no longer valid (here: garbage) is replaced.
	secret.Data["tls.crt"] = []byte("not a certificate")
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
		block, _ := pem.Decode(secret.Data["tls.crt"])
		g.Expect(block).NotTo(BeNil())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// mountSecret does what the kubelet does for the manager's pod: it keeps the Secret's tls.crt and
// tls.key in dir.
func mountSecret(ctx context.Context, key client.ObjectKey, dir string) {
	for ctx.Err() == nil {
		secret := &corev1.Secret{}
		if err := k8s.Get(ctx, key, secret); err == nil {
			for _, name := range []string{"tls.crt", "tls.key"} {
				path := filepath.Join(dir, name)
				if old, _ := os.ReadFile(path); len(secret.Data[name]) > 0 && !bytes.Equal(old, secret.Data[name]) {
					_ = os.WriteFile(path, secret.Data[name], 0o600)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func parseCert(g Gomega, data []byte) *x509.Certificate {
	block, _ := pem.Decode(data)
	g.Expect(block).NotTo(BeNil())
	cert, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	return cert
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
