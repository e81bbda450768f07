package pixxel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/textutil"
)

// maxErrorText bounds each text taken from an error answer, so that a hostile or broken server cannot
// flood conditions and logs.
const maxErrorText = 1024

// Error is a non-200 answer from the platform API.
type Error struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Code, Message and Details are the API's own error object, when the body held one.
	Code    string
	Message string
	Details string
	// RetryAfter is the delay the server asked for with Retry-After, or zero.
	RetryAfter time.Duration
}

// Kind is what an answer's HTTP status says. It is the one reading of status codes: the controller
// (internal/controller, classify) maps each kind to stall, wait or back off, and the key's budget
// (internal/budget) to a pause, an open breaker or a grown rate.
type Kind int

const (
	// KindOther is an answer the API does not document (another 4xx, or a 3xx not followed).
	KindOther Kind = iota
	// KindBadRequest (400): the request itself is wrong; asking again gets the same answer.
	KindBadRequest
	// KindUnauthorized (401): the API key is not valid.
	KindUnauthorized
	// KindForbidden (403): the key may not access the workflow, job or task.
	KindForbidden
	// KindNotFound (404): the workflow, job or task does not exist (yet).
	KindNotFound
	// KindRateLimited (429): the key is over its rate limit.
	KindRateLimited
	// KindServerError (5xx): the platform cannot serve the call now.
	KindServerError
)

// Kind returns what the answer's status says.
func (e *Error) Kind() Kind {
	switch {
	case e.StatusCode == http.StatusBadRequest:
		return KindBadRequest
	case e.StatusCode == http.StatusUnauthorized:
		return KindUnauthorized
	case e.StatusCode == http.StatusForbidden:
		return KindForbidden
	case e.StatusCode == http.StatusNotFound:
		return KindNotFound
	case e.StatusCode == http.StatusTooManyRequests:
		return KindRateLimited
	case e.StatusCode >= http.StatusInternalServerError:
		return KindServerError
	}
	return KindOther
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "platform API answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// TransportError is a failure to reach the API or to read its answer: a refused or reset connection,
// a DNS failure, a timeout.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// RedirectError is a redirect to another origin, which the client does not follow so that the API key
// never leaves the API's origin. It names the origins only: a Location's path or query may hold tokens.
type RedirectError struct{ From, To string }

func (e *RedirectError) Error() string {
	return fmt.Sprintf("platform API at %s redirected to %s, another origin; not followed, so that the API key "+
		"is not sent there (point --api-url at the API itself)", e.From, e.To)
}

// BodyTooLargeError is an answer larger than the client reads.
type BodyTooLargeError struct{ Limit int }

func (e *BodyTooLargeError) Error() string {
	return fmt.Sprintf("platform API answer is larger than %d bytes", e.Limit)
}

// InvalidResponseError is a 200 answer that does not make sense: not JSON, ready without a URL, and so on.
type InvalidResponseError struct{ Reason string }

func (e *InvalidResponseError) Error() string { return "invalid answer from platform API: " + e.Reason }

// DecodeError builds an *Error from a non-200 answer. A body that is not the documented error object
// (an HTML page from a proxy, say) leaves Code, Message and Details empty.
func DecodeError(status int, body []byte) *Error {
	e := &Error{StatusCode: status}
	var envelope struct {
		Error *struct {
			Code    json.RawMessage `json:"code"`
			Message json.RawMessage `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &envelope) != nil || envelope.Error == nil {
		return e
	}
	e.Code = truncate(jsonText(envelope.Error.Code))
	e.Message = truncate(jsonText(envelope.Error.Message))
	e.Details = truncate(jsonText(envelope.Error.Details))
	return e
}

// jsonText renders a JSON value as text: a string as itself, anything else as compact JSON.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	out, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(out)
}

// truncate shortens s to at most maxErrorText bytes without splitting a UTF-8 sequence, and removes
// control characters and invalid UTF-8, so that the result is safe in logs and condition messages.
func truncate(s string) string {
	return textutil.Truncate(signedurl.CleanText(s), maxErrorText, "…")
}

// ParseRetryAfter reads a Retry-After header, in seconds or as an HTTP date, as a delay from now.
// It returns zero when the header is absent, malformed or in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 24*time.Hour)
		}
	}
	return 0
}
