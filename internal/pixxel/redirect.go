package pixxel

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

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
