// Package tlsroots gives the manager and the fetch helper the CA roots they verify HTTPS with: the
// system's, plus the certificates of --ca-file.
//
// The image is built from nothing and has no /etc/ssl/certs: its roots are the Mozilla bundle embedded
// by golang.org/x/crypto/x509roots/fallback, which Go uses only while the system offers none. Mounting
// one CA file into /etc/ssl/certs (or pointing SSL_CERT_FILE or SSL_CERT_DIR at it) makes that file the
// system's roots and drops the embedded ones, so every public endpoint stops verifying. Pool instead
// adds the files to whatever the system roots are.
package tlsroots

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	// The roots the image trusts when the system offers none (it has no CA bundle of its own).
	_ "golang.org/x/crypto/x509roots/fallback"
)

// Pool returns the system roots (the embedded bundle when the system has none) with the PEM
// certificates of files added. Without files it returns nil, which crypto/tls reads as the system roots.
// A file that cannot be read, or holds no certificate or a broken one, is an error naming it.
func Pool(files ...string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("reading the system's CA roots: %w", err)
	}
	for _, f := range files {
		certs, err := readCerts(f)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file) //nolint:gosec // the operator's own flag names the file
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	return certs, nil
}

// Files is a repeatable flag of CA files; a comma also separates files.
type Files []string

// String implements flag.Value.
func (f *Files) String() string { return strings.Join(*f, ",") }

// Set implements flag.Value.
func (f *Files) Set(s string) error {
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			return errors.New("empty file name")
		}
		*f = append(*f, p)
	}
	return nil
}

// Usage is the help text of the --ca-file flag of both commands.
const Usage = "PEM file of CA certificates to trust in addition to the system's roots (the image's " +
	"embedded Mozilla roots), e.g. a TLS-inspecting proxy's CA; repeat the flag or separate files with commas."
