package tlsroots_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
)

// privateCA writes a CA certificate to a PEM file and returns it with a server certificate for
// 127.0.0.1 it signed: a company's CA and the TLS-inspecting proxy or mirror it vouches for.
func privateCA(t *testing.T) (caFile string, server tls.Certificate) {
	t.Helper()
	g := NewWithT(t)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Corp Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	g.Expect(err).NotTo(HaveOccurred())
	ca, err := x509.ParseCertificate(caDER)
	g.Expect(err).NotTo(HaveOccurred())

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "proxy.example.internal"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	g.Expect(err).NotTo(HaveOccurred())

	caFile = filepath.Join(t.TempDir(), "ca.crt")
	g.Expect(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)).To(Succeed())
	return caFile, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}

// trustedBundleRoots counts the embedded Mozilla roots that pool trusts.
func trustedBundleRoots(pool *x509.CertPool) (trusted, total int) {
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			continue
		}
		total++
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: c.NotBefore.Add(time.Hour),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			trusted++
		}
	}
	return trusted, total
}

// childEnv marks the re-executed test binary, which runs with the system roots of the image.
const childEnv = "TLSROOTS_TEST_CHILD"

// inImage runs this test again in a process that, like the image, finds no system CA roots, with the
// environment extra; it returns false in that process, which then runs the test's body.
func inImage(t *testing.T, extra ...string) bool {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", "SSL_CERT_FILE=/nonexistent/ca.crt", "SSL_CERT_DIR=/nonexistent")
	cmd.Env = append(cmd.Env, extra...)
	out, err := cmd.CombinedOutput()
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s", out)
	NewWithT(t).Expect(string(out)).To(ContainSubstring("--- PASS: "+t.Name()), "the child ran the test")
	return true
}

// TestPoolAddsToTheImageRoots: with --ca-file, a server signed by a private CA verifies and every
// embedded root stays trusted.
func TestPoolAddsToTheImageRoots(t *testing.T) {
	if inImage(t) {
		return
	}
	g := NewWithT(t)
	caFile, cert := privateCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("through the proxy"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	get := func(pool *x509.CertPool) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		resp, err := c.Get(srv.URL)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}

	system, err := x509.SystemCertPool()
	g.Expect(err).NotTo(HaveOccurred())
	before, total := trustedBundleRoots(system)
	g.Expect(total).To(BeNumerically(">", 100))
	g.Expect(before).To(Equal(total), "without system roots Go uses the embedded bundle")
	g.Expect(get(nil)).To(MatchError(ContainSubstring("certificate signed by unknown authority")))

	pool, err := tlsroots.Pool(caFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get(pool)).To(Succeed())
	after, _ := trustedBundleRoots(pool)
	g.Expect(after).To(Equal(total), "adding a CA keeps every embedded root")
}

// TestCADirectoryReplacesTheImageRoots shows why --ca-file exists: one CA file as the system's
// certificate directory (mounting it into /etc/ssl/certs) leaves that CA as the only root.
func TestCADirectoryReplacesTheImageRoots(t *testing.T) {
	dir := t.TempDir()
	caFile, _ := privateCA(t)
	data, err := os.ReadFile(caFile)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	NewWithT(t).Expect(os.WriteFile(filepath.Join(dir, "ca.crt"), data, 0o600)).To(Succeed())
	if inImage(t, "SSL_CERT_DIR="+dir) {
		return
	}
	system, err := x509.SystemCertPool()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	trusted, _ := trustedBundleRoots(system)
	NewWithT(t).Expect(trusted).To(BeZero())
}

func TestPoolRefusesFilesWithoutCertificates(t *testing.T) {
	g := NewWithT(t)
	pool, err := tlsroots.Pool()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pool).To(BeNil(), "no file: the system roots, untouched")

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	g.Expect(os.WriteFile(empty, []byte("not a certificate\n"), 0o600)).To(Succeed())
	_, err = tlsroots.Pool(empty)
	g.Expect(err).To(MatchError(ContainSubstring("empty.pem holds no PEM certificate")))
	broken := filepath.Join(dir, "broken.pem")
	g.Expect(os.WriteFile(broken, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}), 0o600)).
		To(Succeed())
	_, err = tlsroots.Pool(broken)
	g.Expect(err).To(MatchError(ContainSubstring("broken.pem: certificate 1")))
	_, err = tlsroots.Pool(filepath.Join(dir, "missing.pem"))
	g.Expect(err).To(MatchError(ContainSubstring("missing.pem")))

	var f tlsroots.Files
	g.Expect(f.Set("a.pem,b.pem")).To(Succeed())
	g.Expect(f.Set("c.pem")).To(Succeed())
	g.Expect([]string(f)).To(Equal([]string{"a.pem", "b.pem", "c.pem"}))
	g.Expect(f.Set("a.pem,")).NotTo(Succeed())
}
