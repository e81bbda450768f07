/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ResourceID identifies a workflow, job or task on the platform. It is sent as one escaped URL path
// segment, so it may hold any character except '/' and whitespace, and may not be "." or "..".
// CEL rules with messages, not a pattern, so that a bad ID is answered in words, not with a regular
// expression.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
// +kubebuilder:validation:XValidation:rule="!self.contains('/')",message="must not contain '/': the ID is sent as one segment of the API's URL path; copy the ID alone, not a path or URL"
// +kubebuilder:validation:XValidation:rule="!self.matches('[[:space:]]')",message="must not contain spaces, tabs or line breaks"
// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="must not be '.' or '..'"
type ResourceID string

// TaskDownloadSpec names the platform task whose outputs are wanted and where to publish its signed URL.
type TaskDownloadSpec struct {
	// WorkflowID is the ID of the workflow the task belongs to.
	// +required
	WorkflowID ResourceID `json:"workflowID"`

	// JobID is the ID of the job run that executed the task.
	// +required
	JobID ResourceID `json:"jobID"`

	// TaskID is the ID of the task whose outputs are packaged for download.
	// +required
	TaskID ResourceID `json:"taskID"`

	// APIKeySecretRef selects the key of a Secret, in the TaskDownload's own namespace, that holds the
	// platform API key. The key is sent as the Authorization header and never printed.
	// +required
	APIKeySecretRef SecretKeySelector `json:"apiKeySecretRef"`

	// Target, when set, makes the operator create and own a ConfigMap or Secret that holds the signed URL
	// under the keys SIGNED_URL, STATUS, EXPIRES_AT, WORKFLOW_ID, JOB_ID and TASK_ID, ready for envFrom
	// or a volume mount. Without it the signed URL is published only in status.signedURL.
	// +optional
	Target *Target `json:"target,omitempty"`

	// RefreshBefore makes the operator request a fresh URL this long before the published one expires.
	// By default it does so when two thirds of the URL's lifetime have passed. Each URL is used for at
	// least a third of its lifetime: a longer RefreshBefore is clamped (a Warning event says so once).
	// It has no effect when the URL's expiry cannot be read from it; --default-url-ttl applies then.
	// Written with a unit, for example 10m or 1h30m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+$')",message="must be a duration with a unit, such as 90s, 15m or 1h30m (units: h, m, s, ms, us, ns)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+$') || duration(self) > duration('0s')",message="must be longer than zero"
	RefreshBefore *metav1.Duration `json:"refreshBefore,omitempty"`

	// Suspend stops all calls to the platform API while true; what was published stays in place until
	// it expires.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// SecretKeySelector selects one key of a Secret in the TaskDownload's namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a valid object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`

	// Key within the Secret's data that holds the API key.
	// +optional
	// +kubebuilder:default=api-key
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// TargetKind is the kind of object the signed URL is published to.
// +kubebuilder:validation:Enum=ConfigMap;Secret
type TargetKind string

const (
	// TargetConfigMap publishes to a ConfigMap; the URL is then also shown in status.signedURL.
	TargetConfigMap TargetKind = "ConfigMap"
	// TargetSecret publishes to a Secret; the URL is then kept out of status, since a signed URL is a
	// bearer credential.
	TargetSecret TargetKind = "Secret"
)

// Target describes the ConfigMap or Secret the operator creates and owns.
type Target struct {
	// Kind of the object: ConfigMap or Secret. Choose Secret when readers of the namespace's
	// ConfigMaps must not be able to download the task's outputs.
	// +optional
	// +kubebuilder:default=ConfigMap
	Kind TargetKind `json:"kind,omitempty"`

	// Name of the object, in the TaskDownload's namespace. Defaults to the TaskDownload's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a valid object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name,omitempty"`
}

// Phase summarises where a TaskDownload is.
// +kubebuilder:validation:Enum=Pending;Ready;Failed
type Phase string

const (
	// PhasePending means the package is being prepared, or the operator is waiting to retry.
	PhasePending Phase = "Pending"
	// PhaseReady means a signed URL is published.
	PhaseReady Phase = "Ready"
	// PhaseFailed means the operator cannot go on until the spec, the Secret or the
	// requested-at annotation changes.
	PhaseFailed Phase = "Failed"
)

// TaskRef names a platform task.
type TaskRef struct {
	// WorkflowID is the task's workflow.
	WorkflowID string `json:"workflowID"`
	// JobID is the task's job run.
	JobID string `json:"jobID"`
	// TaskID is the task.
	TaskID string `json:"taskID"`
}

// TaskDownloadStatus is what the operator last saw of the download.
type TaskDownloadStatus struct {
	// ObservedGeneration is the generation of the spec this status describes. It is -1 until the
	// operator first handles the object, so that tools such as kstatus do not report a new object as
	// current.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is Pending, Ready or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// TaskStatus is the status the platform API last answered (for example pending or ready), without
	// control characters and cut to 64 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TaskStatus string `json:"taskStatus,omitempty"`

	// SignedURL is the published download URL. It is omitted when target.kind is Secret.
	// +optional
	SignedURL string `json:"signedURL,omitempty"`

	// ExpiresAt is when the signed URL stops working, as read from the URL's signature parameters
	// (AWS SigV4, Google Cloud Storage, CloudFront, Azure SAS). Empty when the URL does not say.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// LastRequestTime is when the operator requested the published URL or, while none is published, when
	// it last called the platform API for an answer that changed this status.
	// +optional
	LastRequestTime *metav1.Time `json:"lastRequestTime,omitempty"`

	// PublishedTask names the task whose signed URL is published (in signedURL or the target). When the
	// spec is edited to name another task, that URL is withdrawn at once, not left for readers until the
	// new task's URL is ready.
	// +optional
	PublishedTask *TaskRef `json:"publishedTask,omitempty"`

	// LastHandledRequestedAt is the value of the downloads.pixxel.space/requested-at annotation that the
	// operator last acted upon.
	// +optional
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`

	// PendingSince is when the platform first answered that the package for the current request is not
	// ready yet. Polls are spaced in proportion to the time waited since, so that readiness is noticed
	// about 10 % of that time after it happens; it is kept here, in microseconds, so that a restart
	// does not start the wait over.
	// +optional
	PendingSince *metav1.MicroTime `json:"pendingSince,omitempty"`

	// StalledOn fingerprints the inputs (spec generation, API-key Secret version, requested-at
	// annotation) of a request the platform refused for good (BadRequest, TaskFailed). The same
	// request is not made again, also after a restart of the operator, until one of them changes.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	StalledOn string `json:"stalledOn,omitempty"`

	// Conditions are Ready, and Reconciling or Stalled while they are true.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=td,categories=pixxel
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Stalled",type=string,JSONPath=`.status.conditions[?(@.type=="Stalled")].reason`,description="Why the operator cannot go on without someone acting; may show beside Ready True: the published URL works but cannot be refreshed"
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`,description="When the published URL expires (a date column would show future times as <invalid>)"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Platform Answer",type=string,priority=1,JSONPath=`.status.taskStatus`,description="The platform's last answer to a download request (status.taskStatus), not the TaskDownload's health: it may be pending while a published URL is Ready, or ready for a URL that has since expired"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.target) || size(self.metadata.name) <= 63",fieldPath=".spec.target",message="metadata.name must be at most 63 characters when spec.target is set, because the target is labelled downloads.pixxel.space/taskdownload=<name> and label values are limited to 63: choose a shorter name, or publish in status only (no spec.target)"

// TaskDownload asks the platform for a signed URL to a finished task's outputs and publishes it,
// replacing it before it expires.
type TaskDownload struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is a standard object metadata
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// Spec names the task and where to publish its signed URL.
	// +required
	Spec TaskDownloadSpec `json:"spec"`

	// Status is what the operator last saw of the download.
	// +optional
	// +kubebuilder:default={"observedGeneration":-1}
	Status TaskDownloadStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// TaskDownloadList contains a list of TaskDownload
type TaskDownloadList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []TaskDownload `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &TaskDownload{}, &TaskDownloadList{})
		return nil
	})
}

// ExpiresAtString renders status.expiresAt as published in EXPIRES_AT: RFC 3339, or empty when unknown.
func (s TaskDownloadStatus) ExpiresAtString() string {
	if s.ExpiresAt == nil {
		return ""
	}
	return s.ExpiresAt.UTC().Format(time.RFC3339)
}
