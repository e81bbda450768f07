package pixxel_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
)

// TestWithRootCAsTrustsAPrivateCA: an API behind a certificate of a private CA (a TLS-inspecting proxy)
// answers once that CA is added with --ca-file, measured transport and all; without it the call fails.
func TestWithRootCAsTrustsAPrivateCA(t *testing.T) {
	g := NewWithT(t)
	srv := fakepixxel.NewUnstarted()
	srv.StartTLS()
	defer srv.Close()
	srv.Script(fakeTask(task), fakepixxel.Ready("https://storage.example/p.zip?sig=abc"))
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	g.Expect(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		0o600)).To(Succeed())
	pool, err := tlsroots.Pool(caFile)
	g.Expect(err).NotTo(HaveOccurred())
	wrapped := 0
	measure := func(rt http.RoundTripper) http.RoundTripper {
		wrapped++
		return rt
	}

	_, err = newClient(t, srv.URL).RequestDownload(context.Background(), apiKey, task)
	g.Expect(err).To(MatchError(ContainSubstring("certificate signed by unknown authority")))

	c := newClient(t, srv.URL, pixxel.WithRootCAs(pool), pixxel.WithTransportWrapper(measure))
	d, err := c.RequestDownload(context.Background(), apiKey, task)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.State()).To(Equal(pixxel.StateReady))
	g.Expect(wrapped).To(Equal(1))
}
