package injection

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/metrics"
)

// ReasonInjectionBypassed (a Warning event on a pod): the pod is labelled for injection but was created
// without the webhook's changes, so it runs without its downloads. The webhook configuration is missing,
// or its namespaceSelector leaves out the pod's namespace.
const ReasonInjectionBypassed = "InjectionBypassed"

// BypassReporter reports pods labelled for injection that the webhook never saw. It reads the pods the
// scheduling gate controller caches (those not yet bound to a node, which every new pod is), so it costs
// no watch of its own.
type BypassReporter struct {
	Client client.Reader
	// APIReader reads a pod the cache no longer holds: a bypassed pod has no gate, so the scheduler
	// may bind it (and the cache drop it) before it is reconciled.
	APIReader client.Reader
	Recorder  events.EventRecorder
}

// SetupWithManager registers the reporter; the manager's pod cache must keep the label LabelInject and
// the annotation AnnotationInjected (schedulinggate.CacheOptions does).
func (r *BypassReporter) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("injectionbypass").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(e event.CreateEvent) bool { return bypassed(e.Object) },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			DeleteFunc:  func(event.DeleteEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Complete(r)
}

func bypassed(o client.Object) bool {
	_, injected := o.GetAnnotations()[downloadsv1alpha1.AnnotationInjected]
	return o.GetLabels()[downloadsv1alpha1.LabelInject] == "true" && !injected
}

// Reconcile reports one pod.
func (r *BypassReporter) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	err := r.Client.Get(ctx, req.NamespacedName, pod)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, req.NamespacedName, pod)
	}
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !bypassed(pod) {
		return ctrl.Result{}, nil
	}
	metrics.InjectionBypassed.Inc()
	ctrl.LoggerFrom(ctx).Info("A pod labelled for injection was created without it: is the webhook configured "+
		"for its namespace?", "pod", req.NamespacedName)
	r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonInjectionBypassed, "Inject",
		"The pod is labelled %s=true but the injecting webhook did not see it, so it has no download: check that "+
			"the operator runs with --enable-injection and that the webhook's namespaceSelector includes this namespace",
		downloadsv1alpha1.LabelInject)
	return ctrl.Result{}, nil
}
