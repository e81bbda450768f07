package controller

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// retryKind says when to try again after a failure.
type retryKind int

const (
	// retryBackoff retries on the per-object exponential backoff.
	retryBackoff retryKind = iota
	// retrySlow retries at the maximum poll interval: the answer is unlikely to change soon.
	retrySlow
	// retryAfter retries after the delay the server asked for, or on the backoff when it gave none.
	retryAfter
	// retryNever waits for the user: the spec, the Secret or the requested-at annotation must change.
	retryNever
)

// failure is what stopped a reconcile short of a published URL, for a reason the user can read. Steps
// return it as their error; it becomes the conditions' reason and message, the event, and (through
// requeue) the time of the next attempt.
type failure struct {
	reason  string
	message string
	retry   retryKind
	delay   time.Duration // for retryAfter
	// keepReady leaves the Ready condition as it was (a rate limit says nothing about the URL).
	keepReady bool
	// stalled means the user must act: phase Failed, Stalled=True, Reconciling dropped.
	stalled bool
}

func (f *failure) Error() string { return f.reason + ": " + f.message }

// stalledFailure is a failure only the user can resolve: nothing is retried until the spec, the Secret
// or the requested-at annotation changes.
func stalledFailure(reason, format string, args ...any) *failure {
	return &failure{reason: reason, message: fmt.Sprintf(format, args...), retry: retryNever, stalled: true}
}

// The failures the operator finds itself, beside the platform's answers (classify): each says what the
// user must change. The Secret watch brings the object back when the Secret changes.

func secretNotFound(name, namespace string) *failure {
	return stalledFailure(downloadsv1alpha1.ReasonSecretNotFound,
		"Secret %q named by spec.apiKeySecretRef does not exist in namespace %q", name, namespace)
}

func secretKeyNotFound(name, dataKey string) *failure {
	return stalledFailure(downloadsv1alpha1.ReasonSecretKeyNotFound, "Secret %q has no key %q", name, dataKey)
}

func secretKeyEmpty(name, dataKey string) *failure {
	return stalledFailure(downloadsv1alpha1.ReasonSecretKeyEmpty, "Secret %q key %q is empty", name, dataKey)
}

// apiKeyInvalid is a key the operator will not send; problem says why, without quoting the key.
func apiKeyInvalid(name, dataKey, problem string) *failure {
	return stalledFailure(downloadsv1alpha1.ReasonAPIKeyInvalid, "The API key in Secret %q key %q %s", name, dataKey, problem)
}

// urlExpired is a URL the platform handed out already expired, or expiring within --min-url-lifetime:
// it is not published, and a new one is asked for on the backoff. The message names the expiry, not
// the URL.
func urlExpired(expiresAt, now time.Time, minLifetime time.Duration) *failure {
	when := "expired at " + expiresAt.UTC().Format(time.RFC3339)
	if expiresAt.After(now) {
		when = fmt.Sprintf("expires at %s, within --min-url-lifetime (%s)", expiresAt.UTC().Format(time.RFC3339), minLifetime)
	}
	return &failure{reason: downloadsv1alpha1.ReasonURLExpired, retry: retryBackoff,
		message: "The platform handed out a signed URL that " + when + "; not published, asking for a new one"}
}

// taskFailed is the platform's answer that the package failed: asking again gets the same answer.
func taskFailed(taskStatus string) *failure {
	return stalledFailure(downloadsv1alpha1.ReasonTaskFailed, "The platform reports the download package as %q", taskStatus)
}

// targetConflict is the failure of a target name taken by an object this TaskDownload does not
// control. The operator never touches such an object; it looks again every --max-poll-interval.
func targetConflict(ref target.Ref) *failure {
	return &failure{reason: downloadsv1alpha1.ReasonTargetConflict, retry: retrySlow, stalled: true,
		message: fmt.Sprintf("%s %q already exists and is not controlled by this TaskDownload; "+
			"delete or rename it, or choose another spec.target.name", ref.Kind.TargetKind(), ref.Name)}
}

// classify maps an error from the platform API client to the operator's response. With the
// constructors above, it is the one place that decides which outcomes stall, which wait and which back
// off; the status codes are read once, by pixxel.Error.Kind. The message is the client's text, which
// never carries the API key: the client redacts it from every answer.
func classify(err error) *failure {
	if d, ok := errors.AsType[*budget.DeferredError](err); ok {
		return &failure{reason: downloadsv1alpha1.ReasonRateLimited, message: deferredMessage(d), retry: retryAfter,
			delay: d.APIError.RetryAfter, keepReady: true}
	}
	if apiErr, ok := errors.AsType[*pixxel.Error](err); ok {
		return classifyStatus(apiErr)
	}
	var (
		invalid  *pixxel.InvalidResponseError
		tooLarge *pixxel.BodyTooLargeError
	)
	if errors.As(err, &invalid) || errors.As(err, &tooLarge) {
		return &failure{reason: downloadsv1alpha1.ReasonInvalidResponse, message: err.Error(), retry: retryBackoff}
	}
	// Transport failures, timeouts and redirects to another origin (*pixxel.RedirectError, whose
	// message says to check --api-url) all mean the API cannot be used from here right now.
	return &failure{reason: downloadsv1alpha1.ReasonAPIUnavailable, message: err.Error(), retry: retryBackoff}
}

func classifyStatus(e *pixxel.Error) *failure {
	msg := apiErrorMessage(e)
	// 401, 403 and 404 need the user (a key, a permission, the IDs) but are retried slowly, since the
	// platform may grant access or create the task without anything changing here.
	stalledButRetried := func(reason string) *failure {
		return &failure{reason: reason, message: msg, retry: retrySlow, stalled: true}
	}
	switch e.Kind() {
	case pixxel.KindBadRequest:
		return &failure{reason: downloadsv1alpha1.ReasonBadRequest, message: msg, retry: retryNever, stalled: true}
	case pixxel.KindUnauthorized:
		return stalledButRetried(downloadsv1alpha1.ReasonUnauthorized)
	case pixxel.KindForbidden:
		return stalledButRetried(downloadsv1alpha1.ReasonForbidden)
	case pixxel.KindNotFound:
		return stalledButRetried(downloadsv1alpha1.ReasonNotFound)
	case pixxel.KindRateLimited:
		return &failure{reason: downloadsv1alpha1.ReasonRateLimited, message: msg, retry: retryAfter, delay: e.RetryAfter, keepReady: true}
	case pixxel.KindServerError:
		return &failure{reason: downloadsv1alpha1.ReasonAPIUnavailable, message: msg, retry: retryAfter, delay: e.RetryAfter}
	default:
		// Other 4xx answers are not documented; treat them as the server being unable to serve us now.
		return &failure{reason: downloadsv1alpha1.ReasonAPIUnavailable, message: msg, retry: retryBackoff}
	}
}

// deferredMessage says why the key's budget put a call off. No call was made, so it must not read as
// the platform's answer to this object, nor quote the answer another object got (whose text may name
// another team's task). It names no time, so that status does not change while the object waits.
func deferredMessage(d *budget.DeferredError) string {
	if d.Reason == budget.DeferredPaused {
		return "No call made: the platform answered another call with this API key 429 and asked to wait; " +
			"every object using the key waits until then"
	}
	return "No call made yet: calls with this API key are spread out to stay within the platform's rate limit; " +
		"the call is made at the key's next turn"
}

// apiErrorMessage is the condition message for an API error: the HTTP status and the API's own code,
// message and details (already bounded and cleaned by the client).
func apiErrorMessage(e *pixxel.Error) string {
	msg := e.Error()
	if e.Details != "" {
		msg += fmt.Sprintf(" (details: %s)", e.Details)
	}
	return msg
}

// retryDelay is when a reconcile that ended in failure f is tried again, by f's retry kind; zero for
// a failure that waits for the user (the Secret watch, a spec change or the requested-at annotation
// brings the object back). It is the only place that turns a failure into a schedule.
func (r *TaskDownloadReconciler) retryDelay(key types.NamespacedName, f *failure) time.Duration {
	switch f.retry {
	case retryNever:
		r.backoff.forget(key)
		return 0
	case retrySlow:
		return r.MaxPollInterval
	case retryAfter:
		if f.delay > 0 {
			return f.delay
		}
	}
	return r.backoff.next(key)
}

// isFailure tells a failure (recorded in status) from a Kubernetes API error (retried as a whole).
func isFailure(err error) bool {
	_, ok := errors.AsType[*failure](err)
	return ok
}
