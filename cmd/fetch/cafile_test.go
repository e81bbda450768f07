package main

import (
	"archive/tar"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

// TestCAFile: storage behind a certificate of a private CA (a mirror, a TLS-inspecting proxy) is
// reached once --ca-file names that CA, in a process that like the image has no system roots.
func TestCAFile(t *testing.T) {
	g := NewWithT(t)
	pkg := tarGz(t, tar.Header{Name: "scene/band1.tif", Typeflag: tar.TypeReg, Mode: 0o600})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pkg) }))
	defer srv.Close()
	dir := t.TempDir()
	urlFile, caFile := filepath.Join(dir, "SIGNED_URL"), filepath.Join(dir, "ca.crt")
	g.Expect(os.WriteFile(urlFile, []byte(srv.URL+"/p.tar.gz?X-Amz-Signature=SECRET"), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		0o600)).To(Succeed())
	image := []string{"SSL_CERT_FILE=/nonexistent/ca.crt", "SSL_CERT_DIR=/nonexistent"}

	code, _, stderr := runBinary(t, image, "--url-file", urlFile, "--dest", filepath.Join(dir, "a"), "--retries=0")
	g.Expect(code).To(Equal(fetch.ExitDownloadFailed), stderr)
	g.Expect(stderr).To(ContainSubstring("certificate signed by unknown authority"))

	dest := filepath.Join(dir, "b")
	code, _, stderr = runBinary(t, image, "--url-file", urlFile, "--dest", dest, "--ca-file", caFile)
	g.Expect(code).To(Equal(fetch.ExitOK), stderr)
	g.Expect(filepath.Join(dest, "scene", "band1.tif")).To(BeAnExistingFile())

	code, _, stderr = runBinary(t, image, "--url-file", urlFile, "--dest", dest, "--ca-file", urlFile)
	g.Expect(code).To(Equal(fetch.ExitUsage))
	g.Expect(stderr).To(ContainSubstring("--ca-file: " + urlFile + " holds no PEM certificate"))
	g.Expect(stderr).NotTo(ContainSubstring("SECRET"))
}
