// Package pixxel is a client for the platform's task download endpoint. It knows nothing of Kubernetes.
//
// The endpoint is PUT /v0/workflows/{workflow_id}/jobs/{job_id}/tasks/{task_id}/download with the raw API
// key in the Authorization header. It answers 200 with the package's status and, once ready, a signed URL;
// errors carry a JSON body {"error":{"code","message","details"}}.
package pixxel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

const (
	// DefaultBaseURL is the platform API's address.
	DefaultBaseURL = "https://api.pixxel.space"
	// DefaultTimeout bounds one request, answer included.
	DefaultTimeout = 30 * time.Second
	// MaxBodyBytes caps how much of an answer is read; larger answers are an error.
	MaxBodyBytes = 1 << 20
	// maxIdleConnsPerHost is how many idle connections to the API the default transport keeps: enough
	// for every concurrent reconcile, so that busy periods reuse connections instead of opening (and
	// TLS-handshaking) a new one for most requests, as net/http's default of 2 would.
	maxIdleConnsPerHost = 256
)

// Task names the task whose outputs are requested.
type Task struct {
	WorkflowID string
	JobID      string
	TaskID     string
}

// Download is the endpoint's answer: the package's status and, once ready, its signed URL.
type Download struct {
	ID         string `json:"id"`
	JobID      string `json:"job_id"`
	WorkflowID string `json:"workflow_id"`
	Status     string `json:"status"`
	SignedURL  string `json:"signed_url"`
}

// Budget shares the platform's rate limit among the calls made with one API key (internal/budget).
type Budget interface {
	// Admit returns once a call with apiKey to apiURL may be made, and a function to report the error
	// the call returned (nil on success); or the error to return instead of making the call.
	Admit(ctx context.Context, apiURL, apiKey string) (done func(error), err error)
}

// Client calls the task download endpoint. It is safe for concurrent use.
type Client struct {
	baseURL    *url.URL
	httpClient *http.Client
	timeout    time.Duration
	userAgent  string
	budget     Budget
	now        func() time.Time
}

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

// New returns a client for the API at baseURL, such as DefaultBaseURL.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid API URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid API URL %q: must be an absolute http or https URL", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("invalid API URL %q: must not carry credentials, a query or a fragment", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		baseURL:    u,
		httpClient: &http.Client{Transport: defaultTransport()},
		timeout:    DefaultTimeout,
		userAgent:  "taskdownload-operator",
		now:        time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	// A copy, so that a client passed in by WithHTTPClient is not changed for its other users.
	hc := *c.httpClient
	hc.CheckRedirect = sameOriginOnly(hc.CheckRedirect)
	c.httpClient = &hc
	return c, nil
}

// maxRedirects is net/http's own limit.
const maxRedirects = 10

// sameOriginOnly follows redirects only within the origin (scheme, host and port) of the request:
// net/http would forward the Authorization header to the same host name on another port or scheme,
// https to http included, and so hand the API key to whatever listens there.
func sameOriginOnly(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if from, to := origin(via[0].URL), origin(req.URL); from != to {
			return &RedirectError{From: from, To: to}
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

// origin renders a URL's scheme, host and port, the port made explicit, and nothing else.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// defaultTransport is net/http's default transport (proxy from the environment, HTTP/2, timeouts)
// keeping enough idle connections for a busy operator.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdleConnsPerHost
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	return t
}

// RequestDownload asks the platform to package the task's outputs and returns its answer. A 200 answer
// whose status is not ready is not an error: call again later. A non-200 answer is an *Error, a 200
// answer that does not make sense an *InvalidResponseError, an oversized one a *BodyTooLargeError and a
// connection failure or timeout a *TransportError. No error carries the API key or a signed URL's query.
// With a Budget, a call it holds back returns its error (a *Error) without reaching the platform.
func (c *Client) RequestDownload(ctx context.Context, apiKey string, task Task) (*Download, error) {
	if c.budget == nil {
		return c.requestDownload(ctx, apiKey, task)
	}
	done, err := c.budget.Admit(ctx, c.baseURL.String(), apiKey)
	if err != nil {
		return nil, err
	}
	d, err := c.requestDownload(ctx, apiKey, task)
	done(err)
	return d, err
}

func (c *Client) requestDownload(ctx context.Context, apiKey string, task Task) (*Download, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	endpoint := c.endpoint(task)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.httpClient.Do(req)
	if err != nil {
		if redirect, ok := errors.AsType[*RedirectError](err); ok {
			return nil, redirect
		}
		return nil, &TransportError{Op: "PUT " + endpoint.Path, Err: unwrapURLError(err)}
	}
	defer func() { _ = resp.Body.Close() }()

	body, err := readCapped(resp.Body)
	if err != nil {
		if _, ok := errors.AsType[*BodyTooLargeError](err); ok {
			return nil, err
		}
		return nil, &TransportError{Op: "reading answer to PUT " + endpoint.Path, Err: unwrapURLError(err)}
	}

	// The one place the API key is taken out of what the platform answered: every text of the answer
	// that reaches an error, a log or status is redacted here, once, with the key compiled once.
	key := signedurl.NewRedactor(apiKey)
	if resp.StatusCode != http.StatusOK {
		apiErr := c.decodeError(resp, body)
		apiErr.Code, apiErr.Message, apiErr.Details = key.Redact(apiErr.Code), key.Redact(apiErr.Message), key.Redact(apiErr.Details)
		return nil, apiErr
	}
	d, err := DecodeDownload(body)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(task); err != nil {
		return nil, err
	}
	if key.Contains(d.SignedURL) {
		// Published, the URL would hand the key to everyone who may read the target or status.
		return nil, &InvalidResponseError{Reason: "signed_url contains the API key; not published"}
	}
	d.Status = key.Redact(signedurl.CleanText(d.Status))
	return d, nil
}

// endpoint builds the request URL, escaping each ID as exactly one path segment.
func (c *Client) endpoint(task Task) *url.URL {
	u := *c.baseURL
	segments := []string{"v0", "workflows", task.WorkflowID, "jobs", task.JobID, "tasks", task.TaskID, "download"}
	raw := make([]string, len(segments))
	for i, s := range segments {
		raw[i] = url.PathEscape(s)
	}
	u.Path = c.baseURL.Path + "/" + strings.Join(segments, "/")
	u.RawPath = c.baseURL.EscapedPath() + "/" + strings.Join(raw, "/")
	return &u
}

func (c *Client) decodeError(resp *http.Response, body []byte) *Error {
	apiErr := DecodeError(resp.StatusCode, body)
	apiErr.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	return apiErr
}

// DecodeDownload decodes a 200 answer.
func DecodeDownload(body []byte) (*Download, error) {
	var d Download
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, &InvalidResponseError{Reason: "the answer is not the documented JSON object: " + jsonErrorSummary(err)}
	}
	return &d, nil
}

func readCapped(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxBodyBytes {
		return nil, &BodyTooLargeError{Limit: MaxBodyBytes}
	}
	return body, nil
}

// unwrapURLError drops *url.Error's wrapping, which repeats the request URL, keeping the cause.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// jsonErrorSummary describes a JSON decoding failure without quoting the input, which could hold a
// signed URL.
func jsonErrorSummary(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q has JSON type %s", typeErr.Field, typeErr.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	default:
		return "invalid JSON"
	}
}
