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

// Package controller holds the TaskDownload reconciler. One reconcile loads the object into a scope,
// runs the steps in order (suspend, API key, keep published, request, publish, then withdraw), then
// summarizes status from what they observed and schedules the next one. See docs/architecture.md.
package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// DownloadRequester asks the platform to package a task's outputs. *pixxel.Client implements it.
//
// RequestDownload returns the API's answer for a 200 response, whatever its status; a non-200 answer
// as *pixxel.Error, a nonsensical one as *pixxel.InvalidResponseError or *pixxel.BodyTooLargeError,
// a redirect to another origin as *pixxel.RedirectError and a connection failure as
// *pixxel.TransportError. Neither errors nor answers carry the API key.
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

	// PollInterval is the shortest delay between polls of a pending package and the first delay after
	// a transient failure; MaxPollInterval the longest, and the retry delay of answers unlikely to
	// change soon (401, 403, 404, a target conflict).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// DefaultURLTTL is the lifetime assumed for a URL whose expiry cannot be read from it.
	DefaultURLTTL time.Duration
	// MinURLLifetime is the least time a URL must have left when handed out to be published.
	MinURLLifetime time.Duration

	backoff *failureBackoff
	keys    apiKeys
	guard   *cacheGuard
	written writtenTargets
}

// step is one stage of a reconcile. It reads the scope, records what it saw in s.obs, and returns its
// outcome; a *failure error says why it could not go on, any other error is the Kubernetes API's.
type step func(ctx context.Context, s *scope) (outcome, error)

// outcome is what a step decided about the rest of the reconcile.
type outcome struct {
	// requeueAfter is when the object should be reconciled again, counted from the end of this
	// reconcile; zero when nothing is due.
	requeueAfter time.Duration
	// polled, for the poll of a pending package, is when its call was sent: the next poll is due
	// requeueAfter after that call, not after this reconcile's end.
	polled time.Time
	// done says the steps after this one are not needed.
	done bool
}

// and merges the outcome of a later step into o: the sooner requeue, with its origin, and done when
// either is.
func (o outcome) and(later outcome) outcome {
	merged := o
	if o.requeueAfter == 0 || (later.requeueAfter != 0 && later.requeueAfter < o.requeueAfter) {
		merged.requeueAfter, merged.polled = later.requeueAfter, later.polled
	}
	merged.done = o.done || later.done
	return merged
}

// cacheCatchUp is how long to wait for the cache to see the operator's own last status write.
const cacheCatchUp = 100 * time.Millisecond

// +kubebuilder:rbac:groups=downloads.pixxel.space,resources=taskdownloads,verbs=get;list;watch
// +kubebuilder:rbac:groups=downloads.pixxel.space,resources=taskdownloads/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create

// Reconcile brings one TaskDownload's published URL up to date: it runs the steps, summarizes what
// they observed into status, and says when to come back.
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
	if current, err := r.guard.current(ctx, td); err != nil || !current {
		return ctrl.Result{RequeueAfter: cacheCatchUp}, err
	}

	s := &scope{td: td, key: req.NamespacedName, now: r.Clock.Now(), log: logf.FromContext(ctx)}
	out, err := r.runSteps(ctx, s)
	if err != nil {
		// A Kubernetes API error: status is left as it was, and controller-runtime retries with its
		// own backoff.
		return ctrl.Result{}, err
	}
	status, err := r.patchStatus(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	return r.nextReconcile(s, out, status), nil
}

// runSteps runs the steps in order. Once one is done or fails (its failure goes to s.obs.failure),
// the others are skipped, but not withdraw: whatever they decided (a failure, a pending answer, a
// suspension), an expired URL, or one for a task the spec no longer names, must go.
func (r *TaskDownloadReconciler) runSteps(ctx context.Context, s *scope) (outcome, error) {
	var out outcome
	for _, stage := range []struct {
		run    step
		always bool
	}{
		{run: r.checkSuspend},           // spec.suspend: no calls to the platform
		{run: r.readAPIKey},             // the key from the Secret, or Stalled until the Secret is fixed
		{run: r.keepPublished},          // a fresh URL: restore the target if needed and call nothing
		{run: r.requestDownload},        // ask the platform once
		{run: r.publish},                // write a ready URL to the target
		{run: r.withdraw, always: true}, // remove an expired URL, or another task's
	} {
		if (out.done || s.obs.failure != nil) && !stage.always {
			continue
		}
		o, err := stage.run(ctx, s)
		if f, ok := errors.AsType[*failure](err); ok {
			s.obs.failure = f
		} else if err != nil {
			return outcome{}, err
		}
		out = out.and(o)
	}
	return out, nil
}

// patchStatus derives the next status from what the steps observed, patches it only when it changed,
// and records at most one event.
func (r *TaskDownloadReconciler) patchStatus(ctx context.Context, s *scope) (downloadsv1alpha1.TaskDownloadStatus, error) {
	prev := s.td.Status
	next := summarize(prev, s.td.Generation, s.obs, s.now)
	if equality.Semantic.DeepEqual(prev, next) {
		return next, nil
	}
	before := s.td.DeepCopy()
	s.td.Status = next
	if err := r.Status().Patch(ctx, s.td, client.MergeFrom(before)); err != nil {
		return next, fmt.Errorf("updating status: %w", err)
	}
	r.guard.wrote(s.key, before.ResourceVersion, s.td.ResourceVersion)
	if e := eventFor(prev, next, s.obs); e != nil && r.Recorder != nil {
		r.Recorder.Eventf(s.td, nil, e.eventType, e.reason, e.action, "%s", e.message)
	}
	return next, nil
}

// nextReconcile is when the object is reconciled again: after a failure, when its retry kind says
// (retryDelay), else when the steps asked; never negative, and no later than just after the published
// URL's expiry (wakeUp). A poll of a pending package that is still the next thing due counts from its
// call (afterCall); when the expiry comes first, the poll waits for that wake-up, so that two calls
// are never closer than half a poll delay.
func (r *TaskDownloadReconciler) nextReconcile(s *scope, out outcome, status downloadsv1alpha1.TaskDownloadStatus) ctrl.Result {
	after := out.requeueAfter
	if s.obs.failure != nil {
		after = r.retryDelay(s.key, s.obs.failure)
	}
	var expires *time.Time
	if status.ExpiresAt != nil {
		expires = &status.ExpiresAt.Time
	}
	next := wakeUp(ctrl.Result{RequeueAfter: after}, expires, s.now, r.PollInterval)
	if pollIsNext := s.obs.failure == nil && !out.polled.IsZero() && next.RequeueAfter == after; pollIsNext {
		next.RequeueAfter = afterCall(after, r.Clock.Since(out.polled))
	}
	return next
}

func (r *TaskDownloadReconciler) forget(key types.NamespacedName) {
	r.backoff.forget(key)
	r.guard.forget(key)
	r.written.forget(key)
}
