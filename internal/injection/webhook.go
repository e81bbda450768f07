package injection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/metrics"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// Path is where the manager's webhook server serves the injecting webhook.
const Path = "/mutate-v1-pod"

// ReasonInjectionRefused (a Warning event on a TaskDownload): a pod naming it was refused admission;
// the event says why.
const ReasonInjectionRefused = "InjectionRefused"

// The outcomes counted by metrics.InjectionAdmissions.
const (
	outcomeInjected = "injected"
	outcomeRefused  = "refused"
	outcomeSkipped  = "skipped"
	outcomeError    = "error"
)

// Webhook is the mutating admission webhook for pods: see the package comment.
type Webhook struct {
	// Client reads TaskDownloads, from the manager's cache.
	Client client.Reader
	// APIReader reads a TaskDownload the cache does not hold yet: one created just before the pod, as
	// GitOps tools applying both at once do.
	APIReader client.Reader
	// Decoder decodes the admitted pod.
	Decoder admission.Decoder
	// Recorder reports refusals on the TaskDownloads the refused pod named.
	Recorder events.EventRecorder
	// Config is what the operator's flags decide for every injected pod.
	Config Config
	// OwnNamespace is the operator's namespace, whose pods are never mutated, whatever the webhook
	// configuration's namespaceSelector says.
	OwnNamespace string
	// Namespaces are the operator's (--watch-namespaces); empty means all. A pod elsewhere is refused:
	// its gate would never be removed.
	Namespaces []string
}

var _ admission.Handler = &Webhook{}

// Handle mutates a pod being created; anything else passes untouched.
func (w *Webhook) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp := w.handle(ctx, req)
	switch {
	case resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError:
		metrics.InjectionAdmissions.WithLabelValues(outcomeError).Inc()
	case !resp.Allowed:
		metrics.InjectionAdmissions.WithLabelValues(outcomeRefused).Inc()
	case len(resp.Patches) > 0:
		metrics.InjectionAdmissions.WithLabelValues(outcomeInjected).Inc()
	default:
		metrics.InjectionAdmissions.WithLabelValues(outcomeSkipped).Inc()
	}
	return resp
}

func (w *Webhook) handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.SubResource != "" {
		// Pod updates are mostly immutable fields; changing them would break the update (fluid#2053).
		return admission.Allowed("only pod creation is mutated")
	}
	if w.OwnNamespace != "" && req.Namespace == w.OwnNamespace {
		return admission.Allowed("the operator's own namespace is never injected")
	}
	pod := &corev1.Pod{}
	if err := w.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	// The patch is the difference between the pod as this webhook's types read it and the same pod
	// mutated, so that fields of a newer API server that those types do not know are never removed.
	original, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if pod.Labels[downloadsv1alpha1.LabelInject] != "true" {
		return admission.Allowed("not labelled " + downloadsv1alpha1.LabelInject + "=true")
	}
	// A pod being created has no namespace of its own when the request's URL gives it.
	namespace := req.Namespace
	if len(w.Namespaces) > 0 && !slices.Contains(w.Namespaces, namespace) {
		return admission.Denied(fmt.Sprintf("namespace %q is not one the operator watches (--watch-namespaces), so "+
			"no TaskDownload here can release the pod: remove the label %s=true, or add the namespace to the "+
			"operator's namespaces", namespace, downloadsv1alpha1.LabelInject))
	}
	names, err := Names(pod)
	if err != nil {
		return admission.Denied(err.Error())
	}
	sources, found, err := w.sources(ctx, namespace, names)
	var added []string
	if err == nil {
		added, err = Inject(pod, sources, w.Config)
	}
	if refusal, ok := errors.AsType[*Refusal](err); ok {
		w.reportRefusal(found, podName(pod, req), refusal, ptr.Deref(req.DryRun, false))
		return admission.Denied(refusal.Error())
	}
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if len(added) == 0 {
		return admission.Allowed("the TaskDownloads were injected before")
	}
	logf.FromContext(ctx).V(1).Info("Injected", "namespace", namespace, "taskDownloads", added)
	return patchResponse(original, pod)
}

// sources reads the named TaskDownloads; found are those that exist, to report a refusal on.
func (w *Webhook) sources(ctx context.Context, namespace string, names []string) (
	sources []Source, found []*downloadsv1alpha1.TaskDownload, err error) {
	for _, name := range names {
		td := &downloadsv1alpha1.TaskDownload{}
		key := types.NamespacedName{Namespace: namespace, Name: name}
		err := w.Client.Get(ctx, key, td)
		if apierrors.IsNotFound(err) && w.APIReader != nil {
			err = w.APIReader.Get(ctx, key, td)
		}
		switch {
		case apierrors.IsNotFound(err):
			return nil, found, refuse("TaskDownload %q (annotation %s) does not exist in namespace %q: create it, "+
				"or remove it from the annotation; a workload controller retries the pod", name,
				downloadsv1alpha1.AnnotationTaskDownloads, namespace)
		case err != nil:
			return nil, found, fmt.Errorf("reading TaskDownload %s/%s: %w", namespace, name, err)
		}
		found = append(found, td)
		ref, ok := target.Of(td)
		if !ok {
			return nil, found, refuse("TaskDownload %q has no spec.target, so a pod has no object to read its URL "+
				"from: set spec.target (kind %s)", name, target.KindNames(" or "))
		}
		sources = append(sources, Source{Name: name, Target: ref})
	}
	return sources, found, nil
}

func (w *Webhook) reportRefusal(found []*downloadsv1alpha1.TaskDownload, pod string, refusal *Refusal, dryRun bool) {
	if w.Recorder == nil || dryRun {
		return
	}
	for _, td := range found {
		w.Recorder.Eventf(td, nil, corev1.EventTypeWarning, ReasonInjectionRefused, "Inject",
			"Pod %s was refused: %s", pod, refusal.Error())
	}
}

// podName names the pod in events: a workload's pods have only a generateName when admitted.
func podName(pod *corev1.Pod, req admission.Request) string {
	switch {
	case pod.Name != "":
		return pod.Name
	case req.Name != "":
		return req.Name
	case pod.GenerateName != "":
		return pod.GenerateName + "<generated>"
	}
	return "<unnamed>"
}

func patchResponse(original []byte, pod *corev1.Pod) admission.Response {
	raw, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(original, raw)
}
