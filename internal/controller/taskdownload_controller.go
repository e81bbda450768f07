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
// runs the steps in order (suspend, API key, keep published, request, publish, then withdraw), and
// a deferred function summarizes status from what they observed. See docs/architecture.md.
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

// step is one stage of a reconcile. It reads the scope, records what it saw in s.obs, and returns
// when the object should be reconciled again; a *failure error says why it could not go on.
type step func(ctx context.Context, s *scope) (ctrl.Result, error)

// cacheCatchUp is how long to wait for the cache to see the operator's own last status write.
const cacheCatchUp = 100 * time.Millisecond

// +kubebuilder:rbac:groups=downloads.pixxel.space,resources=taskdownloads,verbs=get;list;watch
// +kubebuilder:rbac:groups=downloads.pixxel.space,resources=taskdownloads/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create

// Reconcile brings one TaskDownload's published URL up to date.
func (r *TaskDownloadReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
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
	defer func() { result, err = r.summarizeAndPatch(ctx, s, result, err) }()

	for _, run := range []step{
		r.checkSuspend,    // spec.suspend: no calls to the platform
		r.readAPIKey,      // the key from the Secret, or Stalled until the Secret is fixed
		r.keepPublished,   // a fresh URL: restore the target if needed and call nothing
		r.requestDownload, // ask the platform once
		r.publish,         // write a ready URL to the target
	} {
		var next ctrl.Result
		next, err = run(ctx, s)
		result = soonest(result, next)
		if err != nil || s.done {
			break
		}
	}
	if err != nil && !isFailure(err) {
		return ctrl.Result{}, err
	}
	// Whatever the steps decided (a failure, a pending answer, a suspension), an expired URL or one for
	// a task the spec no longer names must go.
	if werr := r.withdraw(ctx, s); werr != nil {
		return ctrl.Result{}, werr
	}
	return result, err
}

// summarizeAndPatch runs after the steps: it derives the next status from what they observed, patches
// it only when it changed, records at most one event, and turns the steps' result and error into the
// time of the next reconcile. A Kubernetes API error is returned as is, status untouched.
func (r *TaskDownloadReconciler) summarizeAndPatch(ctx context.Context, s *scope, result ctrl.Result, err error) (ctrl.Result, error) {
	if f, ok := errors.AsType[*failure](err); ok {
		s.obs.failure = f
	} else if err != nil {
		return ctrl.Result{}, err
	}
	prev := s.td.Status
	next := summarize(prev, s.td.Generation, s.obs, s.now)
	if !equality.Semantic.DeepEqual(prev, next) {
		before := s.td.DeepCopy()
		s.td.Status = next
		if perr := r.Status().Patch(ctx, s.td, client.MergeFrom(before)); perr != nil {
			return ctrl.Result{}, fmt.Errorf("updating status: %w", perr)
		}
		r.guard.wrote(s.key, before.ResourceVersion, s.td.ResourceVersion)
		if e := eventFor(prev, next, s.obs); e != nil && r.Recorder != nil {
			r.Recorder.Eventf(s.td, nil, e.eventType, e.reason, e.action, "%s", e.message)
		}
	}
	result, err = r.requeue(s.key, result, err)
	var expires *time.Time
	if next.ExpiresAt != nil {
		expires = &next.ExpiresAt.Time
	}
	result = wakeUp(result, expires, s.now, r.PollInterval)
	if s.pollDelay > 0 && result.RequeueAfter == s.pollDelay {
		// The next poll is due a delay after this one's call, not after this reconcile's end.
		result.RequeueAfter = afterCall(s.pollDelay, r.Clock.Since(s.polled))
	}
	return result, err
}

// soonest merges two steps' results: the earlier of their requeue times, zero meaning none.
func soonest(a, b ctrl.Result) ctrl.Result {
	if a.RequeueAfter == 0 || (b.RequeueAfter != 0 && b.RequeueAfter < a.RequeueAfter) {
		return b
	}
	return a
}

func (r *TaskDownloadReconciler) forget(key types.NamespacedName) {
	r.backoff.forget(key)
	r.guard.forget(key)
	r.written.forget(key)
}
