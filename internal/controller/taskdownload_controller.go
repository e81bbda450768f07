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

// Package controller holds the TaskDownload reconciler.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// AnnotationRequestedAt forces one fresh request to the platform API whenever its value changes.
const AnnotationRequestedAt = "downloads.pixxel.space/requested-at"

// DefaultAPIKeySecretKey is the Secret key read when spec.apiKeySecretRef.key is empty.
const DefaultAPIKeySecretKey = "api-key"

// DownloadRequester asks the platform to package a task's outputs. *pixxel.Client implements it.
//
// RequestDownload returns the API's answer for a 200 response, whatever its status; a non-200 answer
// as *pixxel.Error, a nonsensical one as *pixxel.InvalidResponseError or *pixxel.BodyTooLargeError,
// and a connection failure as *pixxel.TransportError. Errors never carry the API key.
type DownloadRequester interface {
	RequestDownload(ctx context.Context, apiKey string, task pixxel.Task) (*pixxel.Download, error)
}

var _ DownloadRequester = (*pixxel.Client)(nil)

// TaskDownloadReconciler gets a signed URL for each TaskDownload and publishes it.
type TaskDownloadReconciler struct {
	client.Client
	// APIReader reads API-key Secrets and confirms cached objects without the cache, so that the
	// manager does not cache every Secret in the cluster.
	APIReader client.Reader
	// SecretMeta holds the metadata of Secrets (set up by SetupWithManager); it tells whether a
	// remembered API key is still current.
	SecretMeta client.Reader
	Scheme     *runtime.Scheme
	Recorder   events.EventRecorder
	Pixxel     DownloadRequester
	Clock      clock.PassiveClock

	// PollInterval is the first delay while a package is pending; it doubles up to MaxPollInterval.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// DefaultURLTTL is the lifetime assumed for a URL whose expiry cannot be read from it.
	DefaultURLTTL time.Duration

	backoff *pollBackoff
	keys    apiKeys
	// lastWritten holds, per object, the resourceVersions before and after the operator's last status
	// write (a statusWrite): a cached copy still at the version before predates that write.
	lastWritten sync.Map
	// stalledOn remembers, per object, the inputs of a request that failed for good, so that the same
	// request is not made again until the spec, the Secret or the requested-at annotation changes.
	stalledOn sync.Map
}

// +kubebuilder:rbac:groups=downloads.pixxel.space,resources=taskdownloads,verbs=get;list;watch
// +kubebuilder:rbac:groups=downloads.pixxel.space,resources=taskdownloads/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create

// Reconcile brings one TaskDownload's published URL up to date.
func (r *TaskDownloadReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	td := &downloadsv1alpha1.TaskDownload{}
	if err := r.Get(ctx, req.NamespacedName, td); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !td.DeletionTimestamp.IsZero() {
		// Published objects carry an owner reference; the garbage collector removes them.
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	before := td.DeepCopy()
	obs, result, err := r.reconcile(ctx, td, false)
	if errors.Is(err, errCacheBehind) {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, nil
	}
	if errors.Is(err, errConfirmFromStore) {
		// The cache may not have seen our last status write yet; decide again on the stored object, so
		// that a stale view never causes a duplicate call to the platform.
		if err := r.APIReader.Get(ctx, req.NamespacedName, td); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		before = td.DeepCopy()
		obs, result, err = r.reconcile(ctx, td, true)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	if !obs.published {
		switch {
		case urlExpired(td, now):
			expiredAt := td.Status.ExpiresAt
			if err := r.withdraw(ctx, td); err != nil {
				return ctrl.Result{}, err
			}
			logf.FromContext(ctx).Info("Signed URL expired before a new one was obtained; removed it", "expiredAt", expiredAt)
			obs.expired = true
		case publishedForAnotherTask(td):
			previous := *td.Status.PublishedTask
			if err := r.withdraw(ctx, td); err != nil {
				return ctrl.Result{}, err
			}
			logf.FromContext(ctx).Info("The spec names another task; removed the previous task's signed URL",
				"previousWorkflowID", previous.WorkflowID, "previousJobID", previous.JobID, "previousTaskID", previous.TaskID)
			obs.withdrawn = true
		}
	}
	summarize(td, obs)
	if obs.requested && !hasPublishedURL(td) && !equality.Semantic.DeepEqual(before.Status, td.Status) {
		td.Status.LastRequestTime = &metav1.Time{Time: now}
	}
	if !equality.Semantic.DeepEqual(before.Status, td.Status) {
		if err := r.Status().Patch(ctx, td, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, fmt.Errorf("updating status: %w", err)
		}
		r.lastWritten.Store(req.NamespacedName, statusWrite{from: before.ResourceVersion, to: td.ResourceVersion})
		r.recordEvent(td, obs)
	}
	return wakeBeforeExpiry(td, result, now), nil
}

// errConfirmFromStore asks for the decision to be made again on the object as stored: the cached copy
// may predate the operator's own last status write.
var errConfirmFromStore = errors.New("confirm TaskDownload from the API server")

// errCacheBehind says the cached copy is known to predate the operator's own last status write.
var errCacheBehind = errors.New("cached TaskDownload is behind the operator's last write")

// cacheCatchUp is how long to wait for the cache to see the operator's own write.
const cacheCatchUp = 100 * time.Millisecond

// statusWrite is the operator's last status write to an object: the resourceVersions before and after.
type statusWrite struct{ from, to string }

// reconcile runs the steps and reports what it saw. It returns an error only for Kubernetes API
// failures, which controller-runtime retries with its own backoff, and errConfirmFromStore when it is
// about to call the platform API on the strength of a cached object that may predate its own last
// status write; fromStore says td was read from the API server rather than the cache.
func (r *TaskDownloadReconciler) reconcile(ctx context.Context, td *downloadsv1alpha1.TaskDownload, fromStore bool) (observation, ctrl.Result, error) {
	key := client.ObjectKeyFromObject(td)
	if td.Spec.Suspend {
		r.backoff.forget(key)
		return observation{suspended: true}, ctrl.Result{}, nil
	}

	apiKey, secretVersion, f, err := r.readAPIKey(ctx, td)
	if err != nil || f != nil {
		return observation{failure: f}, ctrl.Result{}, err
	}

	requestedAt := td.Annotations[AnnotationRequestedAt]
	inputs := fmt.Sprintf("%d/%s/%s", td.Generation, secretVersion, requestedAt)
	changed := td.Status.ObservedGeneration != td.Generation || requestedAt != td.Status.LastHandledRequestedAt

	if !changed {
		switch td.Status.Phase {
		case downloadsv1alpha1.PhaseFailed:
			if last, ok := r.stalledOn.Load(key); ok && last == inputs {
				return observation{}, ctrl.Result{}, nil
			}
		case downloadsv1alpha1.PhaseReady:
			if isReady(td) {
				done, obs, result, err := r.keepPublished(ctx, td)
				if done || err != nil {
					return obs, result, err
				}
			}
		}
	}

	if !fromStore {
		// Only an object this process wrote can be behind in the cache; one it never wrote was listed
		// or watched after any earlier write.
		if v, ok := r.lastWritten.Load(key); ok {
			switch w := v.(statusWrite); td.ResourceVersion {
			case w.to:
			case w.from:
				// The cache has not caught up with our own write yet: come back shortly rather than
				// add a read to an API server that is evidently busy.
				return observation{}, ctrl.Result{}, errCacheBehind
			default:
				return observation{}, ctrl.Result{}, errConfirmFromStore
			}
		}
	}
	return r.requestDownload(ctx, td, apiKey, inputs)
}

// keepPublished checks a Ready TaskDownload whose spec has not changed. While its target still holds
// the published URL there is nothing to ask the platform (done is true). A target that was deleted or
// edited is rewritten from status when status knows the URL; otherwise a fresh URL is requested.
func (r *TaskDownloadReconciler) keepPublished(ctx context.Context, td *downloadsv1alpha1.TaskDownload) (bool, observation, ctrl.Result, error) {
	now := r.Clock.Now()
	refreshAt := r.refreshAt(td)
	if !now.Before(refreshAt) {
		logf.FromContext(ctx).V(1).Info("Refreshing signed URL", "refreshAt", refreshAt)
		return false, observation{}, ctrl.Result{}, nil
	}
	fresh := ctrl.Result{RequeueAfter: refreshAt.Sub(now)}
	if _, _, hasTarget := targetKey(td); !hasTarget {
		return true, observation{}, fresh, nil
	}
	existing, err := r.getTarget(ctx, td)
	if f, isFailure := targetFailure(err); isFailure {
		return true, observation{failure: f}, ctrl.Result{RequeueAfter: r.MaxPollInterval}, nil
	}
	if err != nil {
		return true, observation{}, ctrl.Result{}, err
	}
	pub := publication{signedURL: td.Status.SignedURL, taskStatus: td.Status.TaskStatus, expiresAt: td.Status.ExpiresAt}
	if targetInSync(td, existing, pub) {
		return true, observation{}, fresh, nil
	}
	if pub.signedURL == "" {
		return false, observation{}, ctrl.Result{}, nil
	}
	logf.FromContext(ctx).Info("Restoring published target", "target", describeTarget(td))
	if err := r.writeTarget(ctx, td, existing, pub); err != nil {
		if f, isFailure := targetFailure(err); isFailure {
			return true, observation{failure: f}, ctrl.Result{RequeueAfter: r.MaxPollInterval}, nil
		}
		return true, observation{}, ctrl.Result{}, err
	}
	return true, observation{}, fresh, nil
}

// requestDownload calls the platform API once and acts on its answer.
func (r *TaskDownloadReconciler) requestDownload(ctx context.Context, td *downloadsv1alpha1.TaskDownload,
	apiKey, inputs string) (observation, ctrl.Result, error) {
	log := logf.FromContext(ctx)
	key := client.ObjectKeyFromObject(td)
	task := pixxel.Task{
		WorkflowID: string(td.Spec.WorkflowID), JobID: string(td.Spec.JobID), TaskID: string(td.Spec.TaskID),
	}
	r.stalledOn.Delete(key)

	log.V(1).Info("Requesting download package")
	d, err := r.Pixxel.RequestDownload(ctx, apiKey, task)
	td.Status.LastHandledRequestedAt = td.Annotations[AnnotationRequestedAt]
	if err != nil {
		f := classify(err)
		log.Info("Download request failed", "reason", f.reason, "message", f.message)
		if f.stalled {
			r.stalledOn.Store(key, inputs)
		}
		return observation{failure: f, requested: true}, r.retry(key, f), nil
	}
	td.Status.TaskStatus = d.Status

	switch d.State() {
	case pixxel.StateFailed:
		r.stalledOn.Store(key, inputs)
		r.backoff.forget(key)
		f := stalledFailure(ReasonTaskFailed, "The platform reports the download package as %q", d.Status)
		log.Info("Download package failed", "taskStatus", d.Status)
		return observation{failure: f, requested: true}, ctrl.Result{}, nil
	case pixxel.StatePending:
		delay := r.backoff.next(key)
		log.V(1).Info("Download package pending", "taskStatus", d.Status, "retryAfter", delay)
		return observation{pendingStatus: d.Status, requested: true}, ctrl.Result{RequeueAfter: delay}, nil
	}

	pub := publication{signedURL: d.SignedURL, taskStatus: d.Status}
	if e, ok := signedurl.Parse(d.SignedURL); ok {
		pub.expiresAt = &metav1.Time{Time: e.ExpiresAt}
	}
	obs, err := r.publish(ctx, td, pub)
	obs.requested = true
	if err != nil {
		return obs, ctrl.Result{}, err
	}
	if obs.failure != nil {
		return obs, ctrl.Result{RequeueAfter: r.MaxPollInterval}, nil
	}
	r.backoff.forget(key)
	now := r.Clock.Now()
	td.Status.LastRequestTime = &metav1.Time{Time: now}
	refreshAt := r.refreshAt(td)
	log.Info("Published signed URL", "target", obs.targetDesc, "url", signedurl.Redact(d.SignedURL),
		"expiresAt", pub.expiresAt, "refreshAt", refreshAt)
	return obs, ctrl.Result{RequeueAfter: refreshAt.Sub(now)}, nil
}

// publish writes the URL to the target, if any, and to status, unless the target is a Secret.
func (r *TaskDownloadReconciler) publish(ctx context.Context, td *downloadsv1alpha1.TaskDownload, pub publication) (observation, error) {
	kind, _, hasTarget := targetKey(td)
	if hasTarget {
		existing, err := r.getTarget(ctx, td)
		if err == nil {
			err = r.writeTarget(ctx, td, existing, pub)
		}
		if f, isFailure := targetFailure(err); isFailure {
			return observation{failure: f}, nil
		}
		if err != nil {
			return observation{}, err
		}
	}
	if err := r.pruneTargets(ctx, td); err != nil {
		return observation{}, err
	}

	obs := observation{published: true, targetDesc: describeTarget(td)}
	previous := td.Status.SignedURL
	wasReady := td.Status.Phase == downloadsv1alpha1.PhaseReady && isReady(td)
	obs.refreshed = wasReady && (previous == "" || previous != pub.signedURL)
	if kind == downloadsv1alpha1.TargetSecret {
		td.Status.SignedURL = ""
	} else {
		td.Status.SignedURL = pub.signedURL
	}
	td.Status.ExpiresAt = pub.expiresAt
	published := specTask(td)
	td.Status.PublishedTask = &published
	return obs, nil
}

// targetFailure turns a target conflict into the TargetConflict failure.
func targetFailure(err error) (*failure, bool) {
	if conflict, ok := errors.AsType[*errTargetConflict](err); ok {
		return &failure{reason: ReasonTargetConflict, message: conflict.Error(), retry: retrySlow, stalled: true}, true
	}
	return nil, false
}

func describeTarget(td *downloadsv1alpha1.TaskDownload) string {
	kind, key, ok := targetKey(td)
	if !ok {
		return "status.signedURL"
	}
	if kind == downloadsv1alpha1.TargetSecret {
		return fmt.Sprintf("Secret %s", key.Name)
	}
	return fmt.Sprintf("ConfigMap %s and status.signedURL", key.Name)
}

// retry turns a failure's retry kind into the result that schedules the next attempt.
func (r *TaskDownloadReconciler) retry(key types.NamespacedName, f *failure) ctrl.Result {
	switch f.retry {
	case retryNever:
		r.backoff.forget(key)
		return ctrl.Result{}
	case retrySlow:
		return ctrl.Result{RequeueAfter: r.MaxPollInterval}
	case retryAfter:
		if f.delay > 0 {
			return ctrl.Result{RequeueAfter: f.delay}
		}
	}
	return ctrl.Result{RequeueAfter: r.backoff.next(key)}
}

// recordEvent emits one event for a status change: Normal when a URL was published, Warning with the
// condition reason when something went wrong.
func (r *TaskDownloadReconciler) recordEvent(td *downloadsv1alpha1.TaskDownload, obs observation) {
	if r.Recorder == nil {
		return
	}
	switch {
	case obs.expired:
		r.Recorder.Eventf(td, nil, corev1.EventTypeWarning, ReasonExpired, "Expire",
			"The signed URL expired before a new one was obtained; it was removed from %s", describeTarget(td))
	case obs.published:
		reason := ReasonURLIssued
		if obs.refreshed {
			reason = ReasonURLRefreshed
		}
		r.Recorder.Eventf(td, nil, corev1.EventTypeNormal, reason, "Publish", "Signed URL published in %s", obs.targetDesc)
	case obs.failure != nil:
		r.Recorder.Eventf(td, nil, corev1.EventTypeWarning, obs.failure.reason, "Reconcile", "%s", obs.failure.message)
	}
}

func (r *TaskDownloadReconciler) forget(key types.NamespacedName) {
	r.backoff.forget(key)
	r.stalledOn.Delete(key)
	r.lastWritten.Delete(key)
}
