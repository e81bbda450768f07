package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// Condition reasons. Event reasons are the same strings.
const (
	ReasonURLIssued         = "URLIssued"
	ReasonURLRefreshed      = "URLRefreshed"
	ReasonPending           = "Pending"
	ReasonSuspended         = "Suspended"
	ReasonBadRequest        = "BadRequest"
	ReasonUnauthorized      = "Unauthorized"
	ReasonForbidden         = "Forbidden"
	ReasonNotFound          = "NotFound"
	ReasonRateLimited       = "RateLimited"
	ReasonAPIUnavailable    = "APIUnavailable"
	ReasonInvalidResponse   = "InvalidResponse"
	ReasonTaskFailed        = "TaskFailed"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	ReasonSecretKeyEmpty    = "SecretKeyEmpty"
	ReasonTargetConflict    = "TargetConflict"
	ReasonExpired           = "Expired"
)

// retryKind says when to try again after a failure.
type retryKind int

const (
	// retryBackoff retries on the exponential backoff shared with polling.
	retryBackoff retryKind = iota
	// retrySlow retries at the maximum poll interval: the answer is unlikely to change soon.
	retrySlow
	// retryAfter retries after the delay the server asked for, or on the backoff when it gave none.
	retryAfter
	// retryNever waits for the user: the spec, the Secret or the requested-at annotation must change.
	retryNever
)

// failure is what stopped a reconcile short of publishing a URL.
type failure struct {
	reason  string
	message string
	retry   retryKind
	delay   time.Duration // for retryAfter
	// keepReady leaves the Ready condition as it was (a rate limit says nothing about the URL).
	keepReady bool
	// stalled means the user must act: phase Failed and Stalled=True.
	stalled bool
}

func (f *failure) Error() string { return f.reason + ": " + f.message }

// stalledFailure is a failure only the user can resolve: nothing is retried until the spec, the Secret
// or the requested-at annotation changes.
func stalledFailure(reason, format string, args ...any) *failure {
	return &failure{reason: reason, message: fmt.Sprintf(format, args...), retry: retryNever, stalled: true}
}

// classify maps an error from the platform API client to the operator's response. It is the one place
// that decides which failures are terminal, which wait and which back off.
func classify(err error) *failure {
	var (
		apiErr    *pixxel.Error
		invalid   *pixxel.InvalidResponseError
		tooLarge  *pixxel.BodyTooLargeError
		transport *pixxel.TransportError
	)
	switch {
	case errors.As(err, &apiErr):
		return classifyStatus(apiErr)
	case errors.As(err, &invalid), errors.As(err, &tooLarge):
		return &failure{reason: ReasonInvalidResponse, message: err.Error(), retry: retryBackoff}
	case errors.As(err, &transport), errors.Is(err, context.DeadlineExceeded):
		return &failure{reason: ReasonAPIUnavailable, message: err.Error(), retry: retryBackoff}
	default:
		return &failure{reason: ReasonAPIUnavailable, message: err.Error(), retry: retryBackoff}
	}
}

func classifyStatus(e *pixxel.Error) *failure {
	msg := apiErrorMessage(e)
	switch {
	case e.StatusCode == http.StatusBadRequest:
		return &failure{reason: ReasonBadRequest, message: msg, retry: retryNever, stalled: true}
	case e.StatusCode == http.StatusUnauthorized:
		return &failure{reason: ReasonUnauthorized, message: msg, retry: retrySlow}
	case e.StatusCode == http.StatusForbidden:
		return &failure{reason: ReasonForbidden, message: msg, retry: retrySlow}
	case e.StatusCode == http.StatusNotFound:
		return &failure{reason: ReasonNotFound, message: msg, retry: retrySlow}
	case e.StatusCode == http.StatusTooManyRequests:
		return &failure{reason: ReasonRateLimited, message: msg, retry: retryAfter, delay: e.RetryAfter, keepReady: true}
	case e.StatusCode >= 500:
		return &failure{reason: ReasonAPIUnavailable, message: msg, retry: retryAfter, delay: e.RetryAfter}
	default:
		// Other 4xx answers are not documented; treat them as the server being unable to serve us now.
		return &failure{reason: ReasonAPIUnavailable, message: msg, retry: retryBackoff}
	}
}

// apiErrorMessage is the condition message for an API error: the HTTP status and the API's own code,
// message and details (already truncated by the client).
func apiErrorMessage(e *pixxel.Error) string {
	msg := e.Error()
	if e.Details != "" {
		msg += fmt.Sprintf(" (details: %s)", e.Details)
	}
	return msg
}
