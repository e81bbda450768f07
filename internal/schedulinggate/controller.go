package schedulinggate

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// gateIndex indexes cached pods by the TaskDownloads their gates wait for.
const gateIndex = "spec.schedulingGates.taskDownload"

// Event reasons on a pod that stays gated. Each is recorded once per pod and gate.
const (
	ReasonTaskDownloadNotFound = "TaskDownloadNotFound"
	ReasonTaskDownloadNotReady = "TaskDownloadNotReady"
	ReasonTaskDownloadStalled  = "TaskDownloadStalled"
)

// Reconciler removes a pod's downloads.pixxel.space/<name> gates whose TaskDownloads are Ready.
//
// No kubebuilder RBAC markers here: pods get/list/watch/patch is granted only when the feature is
// enabled, by the chart value operator.schedulingGates or the kustomize component.
type Reconciler struct {
	// Client reads pods (from the trimmed cache of CacheOptions) and TaskDownloads, and patches pods.
	Client client.Client
	// APIReader reads a pod afresh when a patch found it changed.
	APIReader client.Reader
	// Recorder records why a pod still waits.
	Recorder events.EventRecorder

	reported reported
}

// SetupOptions tunes the controller.
type SetupOptions struct {
	MaxConcurrentReconciles int
}

// SetupWithManager registers the controller. The manager's cache must have been built with
// CacheOptions, so that it holds only unscheduled pods, trimmed.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, opts SetupOptions) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		return fmt.Errorf("the scheduling gate controller needs an event recorder")
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, gateIndex,
		func(o client.Object) []string { return gatedOn(o.(*corev1.Pod)) }); err != nil {
		return fmt.Errorf("indexing pods by scheduling gate: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.Pod{}, builder.WithPredicates(carriesOurGate)).
		Watches(&downloadsv1alpha1.TaskDownload{}, handler.EnqueueRequestsFromMapFunc(r.podsGatedOn),
			builder.WithPredicates(stateChanged)).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Named("schedulinggate").
		Complete(r)
}

// carriesOurGate passes pod events for pods with one of our gates; an update also when the old pod had
// one, so that what was remembered about a pod whose gates someone else removed is forgotten.
var carriesOurGate = predicate.Funcs{
	CreateFunc:  func(e event.CreateEvent) bool { return hasGate(e.Object) },
	DeleteFunc:  func(e event.DeleteEvent) bool { return hasGate(e.Object) },
	UpdateFunc:  func(e event.UpdateEvent) bool { return hasGate(e.ObjectOld) || hasGate(e.ObjectNew) },
	GenericFunc: func(e event.GenericEvent) bool { return hasGate(e.Object) },
}

func hasGate(o client.Object) bool {
	pod, ok := o.(*corev1.Pod)
	return ok && len(gatedOn(pod)) > 0
}

// stateChanged passes TaskDownload events that change what a gate on it should do: it appeared or
// disappeared, became Ready or stopped being so, stalled or resumed. Status updates while pending, and
// URL refreshes while Ready, do not wake the pods.
var stateChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*downloadsv1alpha1.TaskDownload)
		cur, okNew := e.ObjectNew.(*downloadsv1alpha1.TaskDownload)
		return okOld && okNew && stateOf(old) != stateOf(cur)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// podsGatedOn maps a TaskDownload to the cached pods gated on it.
func (r *Reconciler) podsGatedOn(ctx context.Context, td client.Object) []reconcile.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(td.GetNamespace()),
		client.MatchingFields{gateIndex: td.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing pods gated on TaskDownload", "taskDownload", client.ObjectKeyFromObject(td))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(pods.Items))
	for _, p := range pods.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
	}
	return reqs
}

// Reconcile removes the pod's gates whose TaskDownloads are Ready and records, once, why the others wait.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted, or bound to a node and so out of the cache: nothing more to say about it.
			r.reported.forget(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	names := gatedOn(pod)
	if len(names) == 0 {
		r.reported.forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}

	var release []string
	for _, name := range names {
		td := &downloadsv1alpha1.TaskDownload{}
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: name}, td); err != nil {
			if !apierrors.IsNotFound(err) {
				return reconcile.Result{}, err
			}
			td = nil
		}
		if stateOf(td) == stateReady {
			release = append(release, name)
			continue
		}
		r.reportWaiting(pod, name, td)
	}
	if len(release) == 0 {
		return reconcile.Result{}, nil
	}
	removed, err := r.removeGates(ctx, pod, release)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("removing scheduling gates: %w", err)
	}
	for _, name := range removed {
		r.reported.forgetGate(req.NamespacedName, name)
		log.Info("Removed scheduling gate: TaskDownload is Ready", "gate", GateName(name))
	}
	return reconcile.Result{}, nil
}

// reportWaiting records an event on the pod saying why it waits for TaskDownload name (nil: missing),
// unless the same was already said about this pod and gate.
func (r *Reconciler) reportWaiting(pod *corev1.Pod, name string, td *downloadsv1alpha1.TaskDownload) {
	var reason, eventType, note string
	switch stateOf(td) {
	case stateMissing:
		reason, eventType = ReasonTaskDownloadNotFound, corev1.EventTypeWarning
		note = fmt.Sprintf("Waiting for TaskDownload %s, which does not exist: the pod stays gated until it is created and Ready", name)
	case stateStalled:
		reason, eventType = ReasonTaskDownloadStalled, corev1.EventTypeWarning
		note = fmt.Sprintf("Waiting for TaskDownload %s, which cannot become Ready until it is fixed%s", name, readyDetail(td))
	default:
		reason, eventType = ReasonTaskDownloadNotReady, corev1.EventTypeNormal
		note = fmt.Sprintf("Waiting for TaskDownload %s to be Ready%s", name, readyDetail(td))
	}
	if !r.reported.first(client.ObjectKeyFromObject(pod), pod.UID, name, reason) {
		return
	}
	if td == nil {
		r.Recorder.Eventf(pod, nil, eventType, reason, "WaitForTaskDownload", "%s", note)
		return
	}
	r.Recorder.Eventf(pod, td, eventType, reason, "WaitForTaskDownload", "%s", note)
}

// readyDetail quotes the TaskDownload's Ready condition, which the TaskDownload controller keeps free of
// secrets and signed URLs.
func readyDetail(td *downloadsv1alpha1.TaskDownload) string {
	c := apimeta.FindStatusCondition(td.Status.Conditions, downloadsv1alpha1.ConditionReady)
	if c == nil {
		return " (not handled by the operator yet)"
	}
	if c.Message == "" {
		return fmt.Sprintf(" (%s)", c.Reason)
	}
	return fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
}
