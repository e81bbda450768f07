package pixxel

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"
)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, proxies, TLS). The default is net/http's default
// transport keeping up to 256 idle connections to the API, so that concurrent reconciles reuse them.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithRootCAs makes the client verify the API's certificate with pool (tlsroots.Pool) instead of
// the system roots. It changes the *http.Transport of the client set so far (the default one, or
// WithHTTPClient's when that option comes first, on a copy), so it goes before WithTransportWrapper.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) {
		t, ok := c.httpClient.Transport.(*http.Transport)
		if c.httpClient.Transport == nil {
			t, ok = defaultTransport(), true
		}
		if !ok || pool == nil {
			return
		}
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		t.TLSClientConfig.RootCAs = pool
		hc := *c.httpClient
		hc.Transport = t
		c.httpClient = &hc
	}
}

// WithTimeout bounds each request, reading the answer included.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithBudget makes every request ask b first, and tell it the outcome.
func WithBudget(b Budget) Option { return func(c *Client) { c.budget = b } }

// WithTransportWrapper wraps the transport of the HTTP client set so far (the default one, or
// WithHTTPClient's when that option comes first), to measure each request as it goes on the wire.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(c *Client) {
		hc := *c.httpClient
		if hc.Transport == nil {
			hc.Transport = http.DefaultTransport
		}
		hc.Transport = wrap(hc.Transport)
		c.httpClient = &hc
	}
}

// WithClock sets the clock used to turn a Retry-After date into a delay.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }
