package injection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// What a pod asks for, read from its annotations, and the manager's flags that set the defaults: each
// value is checked here, and a bad one is a *Refusal whose text says how to fix it.

// ParseResources reads a container's resources written as JSON, as in DefaultResources.
func ParseResources(s string) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%v; write a container's resources as JSON, for example %s", err, DefaultResources)
	}
	return r, nil
}

// ParseEnv reads one --injection-env value, NAME=VALUE.
func ParseEnv(s string) (corev1.EnvVar, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return corev1.EnvVar{}, fmt.Errorf("%q: want NAME=VALUE, such as HTTPS_PROXY=http://proxy:3128", s)
	}
	if errs := validation.IsEnvVarName(name); len(errs) > 0 {
		return corev1.EnvVar{}, fmt.Errorf("%q: %s", name, strings.Join(errs, "; "))
	}
	return corev1.EnvVar{Name: name, Value: value}, nil
}

// Refusal is an error the pod's author must fix; its text is the admission response's message.
type Refusal struct{ msg string }

func (r *Refusal) Error() string { return r.msg }

func refuse(format string, args ...any) error { return &Refusal{msg: fmt.Sprintf(format, args...)} }

// Names returns the TaskDownloads pod asks for, in the annotation's order, without repeats.
func Names(pod *corev1.Pod) ([]string, error) {
	value, ok := pod.Annotations[downloadsv1alpha1.AnnotationTaskDownloads]
	if !ok || strings.TrimSpace(value) == "" {
		return nil, refuse("the pod is labelled %s=true but its annotation %s names no TaskDownload: "+
			"add the annotation (for example \"scene-42,scene-43\"), or remove the label",
			downloadsv1alpha1.LabelInject, downloadsv1alpha1.AnnotationTaskDownloads)
	}
	var names []string
	for _, name := range List(value) {
		if slices.Contains(names, name) {
			continue
		}
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > MaxNameLength {
			return nil, refuse("annotation %s: %q cannot be injected: it must be the name of a TaskDownload in "+
				"the pod's namespace, a DNS label of at most %d characters (lower case letters, digits and '-'), "+
				"since it names the pod's volumes and containers", downloadsv1alpha1.AnnotationTaskDownloads,
				name, MaxNameLength)
		}
		names = append(names, name)
	}
	return names, nil
}

// Injected returns the TaskDownloads a previous admission injected into pod.
func Injected(pod *corev1.Pod) []string {
	return List(pod.Annotations[downloadsv1alpha1.AnnotationInjected])
}

// List splits a comma-separated annotation or flag value, trimmed, leaving out empty items.
func List(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// options are what the pod's annotations decide for all its downloads.
type options struct {
	resources  corev1.ResourceRequirements
	sizeLimit  resource.Quantity
	mountPath  string
	containers []string
}

// podOptions reads the pod's annotations over the manager's defaults (cfg).
func podOptions(pod *corev1.Pod, cfg Config) (options, error) {
	o := options{resources: cfg.Resources, sizeLimit: cfg.SizeLimit, mountPath: downloadsv1alpha1.DefaultInjectionMountPath}
	a := pod.Annotations
	if v, ok := a[downloadsv1alpha1.AnnotationFetchResources]; ok {
		r, err := ParseResources(v)
		if err != nil {
			return o, refuse("annotation %s: %v", downloadsv1alpha1.AnnotationFetchResources, err)
		}
		o.resources = r
	}
	if v, ok := a[downloadsv1alpha1.AnnotationSizeLimit]; ok {
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Sign() <= 0 {
			return o, refuse("annotation %s: %q is not a positive quantity such as \"20Gi\"",
				downloadsv1alpha1.AnnotationSizeLimit, v)
		}
		o.sizeLimit = q
	}
	if o.sizeLimit.Sign() <= 0 {
		return o, refuse("no size for the downloads' emptyDir: set the annotation %s, for example \"20Gi\"",
			downloadsv1alpha1.AnnotationSizeLimit)
	}
	if v, ok := a[downloadsv1alpha1.AnnotationMountPath]; ok {
		v = strings.TrimSpace(v)
		if !path.IsAbs(v) || path.Clean(v) != v || strings.Contains(v, ":") {
			return o, refuse("annotation %s: %q must be an absolute, clean path without ':', such as /data",
				downloadsv1alpha1.AnnotationMountPath, v)
		}
		o.mountPath = v
	}
	apps := make([]string, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		apps = append(apps, c.Name)
	}
	o.containers = apps
	if v, ok := a[downloadsv1alpha1.AnnotationContainers]; ok {
		o.containers = nil
		for _, name := range List(v) {
			if !slices.Contains(apps, name) {
				return o, refuse("annotation %s: the pod has no app container %q (its containers: %s); "+
					"downloads are mounted only into app containers", downloadsv1alpha1.AnnotationContainers,
					name, strings.Join(apps, ", "))
			}
			o.containers = append(o.containers, name)
		}
	}
	return o, nil
}
