package fetch

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/textutil"
)

// retryJitter spreads the retries of many pods started together (a Job's parallel pods) so that they
// do not hit the storage in step.
const retryJitter = 0.5

// retryBackoff doubles RetryDelay up to RetryMaxDelay. wait.Backoff adds its jitter on top of the capped
// duration, so the cap it is given leaves room for the jitter: no delay exceeds RetryMaxDelay.
func retryBackoff(o Options) wait.Backoff {
	capped := time.Duration(float64(o.RetryMaxDelay) / (1 + retryJitter))
	return wait.Backoff{
		Duration: min(o.RetryDelay, capped),
		Factor:   2,
		Jitter:   retryJitter,
		Steps:    math.MaxInt32,
		Cap:      capped,
	}
}

// newTransport bounds every wait but the body's length: the connection, the TLS handshake and the
// response headers here, the gaps between body bytes in attempt.
func newTransport(o *Options) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		TLSClientConfig:       &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		// Transparent gzip would hide Content-Length and break Range offsets.
		DisableCompression: true,
	}
}

// withSafeRedirects returns a copy of c (or a new client) that never follows a redirect from https
// to a weaker scheme: the signed URL's credentials and the package would travel in clear text.
func withSafeRedirects(c *http.Client, o *Options) *http.Client {
	if c == nil {
		c = &http.Client{Transport: newTransport(o)}
	} else {
		cp := *c
		c = &cp
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return permanent(errors.New("stopped after 10 redirects"))
		}
		if from, to := via[0].URL.Scheme, req.URL.Scheme; from == schemeHTTPS && to != schemeHTTPS {
			return permanent(fmt.Errorf("refusing to follow a redirect from https to %s (%s)",
				req.URL.Scheme, signedurl.Redact(req.URL.String())))
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return c
}

const schemeHTTPS = "https"

// permanentError ends the download without retrying: the same request would fail the same way.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// refusedURLError is a 401/403: the signature expired or was revoked, and only a new URL helps.
type refusedURLError struct{ status int }

func (e *refusedURLError) Error() string {
	return fmt.Sprintf("the storage refused the URL (%d)", e.status)
}

// slowDownError is a 5xx, 408 or 429, with the delay its Retry-After asked for (zero when none).
type slowDownError struct {
	err   error
	after time.Duration
}

func (e *slowDownError) Error() string { return e.err.Error() }
func (e *slowDownError) Unwrap() error { return e.err }

// errStalled cancels an attempt that received no byte for IdleTimeout.
var errStalled = errors.New("stalled")

// idleReader pushes the stall deadline back whenever bytes arrive.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}

// parseContentRange reads "bytes start-end/size"; size is -1 when "*".
func parseContentRange(v string) (start, size int64, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil {
		size = -1
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err = strconv.ParseInt(s, 10, 64)
	return start, size, err == nil && start >= 0
}

var xmlCode, xmlMessage = regexp.MustCompile(`<Code>([^<]{1,100})</Code>`), regexp.MustCompile(`<Message>([^<]{1,300})</Message>`)

// storageMessage keeps the Code and Message of an S3/GCS/Azure XML error body. Nothing else of the body
// is shown: a SignatureDoesNotMatch body echoes the signature.
func storageMessage(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 8<<10))
	var parts []string
	for _, re := range []*regexp.Regexp{xmlCode, xmlMessage} {
		if m := re.FindSubmatch(b); m != nil {
			parts = append(parts, textutil.Truncate(signedurl.CleanText(string(m[1])), 200, "…"))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ": ")
}
