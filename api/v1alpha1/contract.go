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
//
// The health rule, which GitOps tools (kstatus: Flux; config/argocd/health.lua: Argo CD), the scheduling
// gates and the alerts rely on:
//   - Ready is True while a usable signed URL is published, and only then; gates release pods while
//     it is True at the current generation, whatever happens to the refresh.
//   - A refresh blocked by a terminal answer (400, 401, 403, 404, a failed task, an unreadable API-key
//     Secret) sets Stalled=True beside Ready=True (kstatus Failed, Argo CD Degraded), records a Warning
//     event and fires the TaskDownloadStalled alert, all while the URL still works; phase stays Ready.
//   - At expiry with no new URL, Ready turns False with reason Expired and the URL is withdrawn from
//     status and the target (phase Failed if Stalled, else Pending).
//   - A routine refresh (pending, rate-limited, or failing for a passing reason) is invisible to GitOps
//     health: Reconciling is set only while no URL is published.
const (
	// ConditionReady is True while a usable signed URL is published.
	ConditionReady = "Ready"
	// ConditionReconciling is True while no URL is published and the operator is working towards one.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator cannot make progress without a change by the user,
	// including a refresh refused for good while the published URL still works (Ready stays True).
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

// Names of the injecting admission webhook (--enable-injection): a pod opts in with LabelInject and names
// the TaskDownloads it needs, in its own namespace, with AnnotationTaskDownloads. The webhook then adds,
// for each, the scheduling gate, a fetch init container, the target as a volume and an emptyDir mounted
// read-only into the app containers.
const (
	// LabelInject must be "true" for a pod to reach the webhook at all (its objectSelector).
	LabelInject = "downloads.pixxel.space/inject"
	// AnnotationTaskDownloads names the TaskDownloads, comma-separated: "scene-42,scene-43".
	AnnotationTaskDownloads = "downloads.pixxel.space/taskdownloads"
	// AnnotationFetchResources overrides the fetch init containers' resources, as the JSON of a
	// container's resources: {"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"memory":"256Mi"}}.
	AnnotationFetchResources = "downloads.pixxel.space/fetch-resources"
	// AnnotationSizeLimit overrides the sizeLimit of each download's emptyDir, a quantity such as "20Gi".
	AnnotationSizeLimit = "downloads.pixxel.space/size-limit"
	// AnnotationMountPath overrides the directory under which each download appears in the app
	// containers, at <mount-path>/<name>; by default DefaultInjectionMountPath.
	AnnotationMountPath = "downloads.pixxel.space/mount-path"
	// AnnotationContainers names the app containers that mount the downloads, comma-separated; by
	// default all of spec.containers, never init or sidecar containers.
	AnnotationContainers = "downloads.pixxel.space/containers"
	// AnnotationInjected is set by the webhook: the TaskDownloads it injected, comma-separated.
	// Re-admission adds nothing twice.
	AnnotationInjected = "downloads.pixxel.space/injected"
	// DefaultInjectionMountPath is where the downloads appear without AnnotationMountPath.
	DefaultInjectionMountPath = "/var/run/taskdownloads"
)
