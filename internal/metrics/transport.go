package metrics

import (
	"net/http"
	"strconv"
	"time"
)

// InstrumentTransport counts and times every request that next sends, by the status code it got, as
// cert-manager's instrumented ACME client does: what reached the platform and what it answered,
// measured where it happens rather than re-derived from the client's errors.
func InstrumentTransport(next http.RoundTripper) http.RoundTripper {
	return instrumentedTransport{next}
}

type instrumentedTransport struct{ next http.RoundTripper }

func (t instrumentedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	APIRequestDuration.Observe(time.Since(start).Seconds())
	code := "none"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	APIRequests.WithLabelValues(code).Inc()
	return resp, err
}
