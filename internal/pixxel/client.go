// Package pixxel is a client for the platform's task download endpoint. It knows nothing of Kubernetes.
//
// The endpoint is PUT /v0/workflows/{workflow_id}/jobs/{job_id}/tasks/{task_id}/download with the raw API
// key in the Authorization header. It answers 200 with the package's status and, once ready, a signed URL;
// errors carry a JSON body {"error":{"code","message","details"}}.
package pixxel

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// DefaultBaseURL is the platform API's address.
	DefaultBaseURL = "https://api.pixxel.space"
	// DefaultTimeout bounds one request, answer included.
	DefaultTimeout = 30 * time.Second
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

// defaultTransport is net/http's default transport (proxy from the environment, HTTP/2, timeouts)
// keeping enough idle connections for a busy operator.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdleConnsPerHost
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	return t
}
