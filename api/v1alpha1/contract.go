package v1alpha1

// The names below are part of the API contract: users, GitOps tools and alerts key on them, so they
// change only with a new API version.

// AnnotationRequestedAt forces one fresh request to the platform API whenever its value changes (for
// example to retry after a BadRequest without editing the spec). status.lastHandledRequestedAt records
// the value handled.
const AnnotationRequestedAt = "downloads.pixxel.space/requested-at"

// DefaultAPIKeySecretKey is the Secret key read when spec.apiKeySecretRef.key is empty.
const DefaultAPIKeySecretKey = "api-key"

// Labels of the ConfigMaps and Secrets the operator publishes to.
const (
	// LabelManagedBy marks the objects the operator publishes to. The manager caches only objects that
	// carry it, so its memory does not grow with the cluster's other ConfigMaps and Secrets.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "taskdownload-operator"
	// LabelTaskDownload names the TaskDownload that owns a published object.
	LabelTaskDownload = "downloads.pixxel.space/taskdownload"
)

// Condition types, following kstatus conventions: Reconciling and Stalled are present only while true.
const (
	// ConditionReady is True while a signed URL is published.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is working towards Ready.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot make progress without a change by the user.
	ConditionStalled = "Stalled"
)

// Condition reasons. Event reasons are the same strings.
const (
	// ReasonURLIssued: a signed URL is published.
	ReasonURLIssued = "URLIssued"
	// ReasonURLRefreshed: a published URL was replaced by a fresh one.
	ReasonURLRefreshed = "URLRefreshed"
	// ReasonPending: the platform is preparing the package.
	ReasonPending = "Pending"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended = "Suspended"
	// ReasonBadRequest: the platform answered 400; not asked again until the inputs change.
	ReasonBadRequest = "BadRequest"
	// ReasonUnauthorized: the platform answered 401 (Stalled; retried every --max-poll-interval).
	ReasonUnauthorized = "Unauthorized"
	// ReasonForbidden: the platform answered 403 (Stalled; retried every --max-poll-interval).
	ReasonForbidden = "Forbidden"
	// ReasonNotFound: the platform answered 404 (Stalled; retried every --max-poll-interval).
	ReasonNotFound = "NotFound"
	// ReasonRateLimited: the platform answered 429.
	ReasonRateLimited = "RateLimited"
	// ReasonAPIUnavailable: 5xx, a timeout, a connection failure, or a redirect to another origin.
	ReasonAPIUnavailable = "APIUnavailable"
	// ReasonInvalidResponse: a 200 answer that makes no sense.
	ReasonInvalidResponse = "InvalidResponse"
	// ReasonTaskFailed: the platform reports the package as failed; not asked again until the inputs change.
	ReasonTaskFailed = "TaskFailed"
	// ReasonSecretNotFound: the API-key Secret does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyNotFound: the API-key Secret lacks the key.
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	// ReasonSecretKeyEmpty: the API key is empty.
	ReasonSecretKeyEmpty = "SecretKeyEmpty"
	// ReasonAPIKeyInvalid: the API key is over 4 KiB or holds bytes an HTTP header cannot carry; no
	// call is made with it (Stalled, until the Secret changes).
	ReasonAPIKeyInvalid = "APIKeyInvalid"
	// ReasonTargetConflict: the target name is taken by an object this TaskDownload does not control.
	ReasonTargetConflict = "TargetConflict"
	// ReasonURLExpired: the platform handed out a URL already expired, or expiring within
	// --min-url-lifetime; it was not published and a new one is asked for after backoff.
	ReasonURLExpired = "URLExpired"
	// ReasonTargetModified (Warning events only): someone other than the operator changed or deleted a
	// published ConfigMap or Secret; it was restored (or, for a Secret, a new URL was requested).
	ReasonTargetModified = "TargetModified"
	// ReasonExpired: the URL expired before a new one was obtained and was removed.
	ReasonExpired = "Expired"
	// ReasonRefreshBeforeClamped (events only): spec.refreshBefore is not shorter than the URL's
	// lifetime, so each URL is used for a third of its life instead.
	ReasonRefreshBeforeClamped = "RefreshBeforeClamped"
)

// Keys of the published ConfigMap or Secret.
const (
	KeySignedURL  = "SIGNED_URL"
	KeyStatus     = "STATUS"
	KeyExpiresAt  = "EXPIRES_AT"
	KeyWorkflowID = "WORKFLOW_ID"
	KeyJobID      = "JOB_ID"
	KeyTaskID     = "TASK_ID"
)

// SchedulingGatePrefix starts the name of every pod scheduling gate the operator removes
// (--enable-scheduling-gates); the rest is a TaskDownload's name: downloads.pixxel.space/<name>.
const SchedulingGatePrefix = "downloads.pixxel.space/"
