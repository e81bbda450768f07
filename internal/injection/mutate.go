// Package injection adds what a pod needs to get a task's outputs: for each TaskDownload a pod names in
// the annotation downloads.pixxel.space/taskdownloads, a scheduling gate, a fetch init container, the
// target as a volume and an emptyDir mounted read-only into the app containers. Inject is the pure
// mutation; Webhook serves it as a mutating admission webhook.
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
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// MaxNameLength is the longest TaskDownload name that can be injected: its volumes are named
// taskdownload-<name> and taskdownload-<name>-url, and volume names are DNS labels of at most 63
// characters.
const MaxNameLength = validation.DNS1123LabelMaxLength - len(volumePrefix) - len(urlVolumeSuffix)

// The names of what Inject adds for TaskDownload <name>.
const (
	fetchPrefix     = "fetch-"
	volumePrefix    = "taskdownload-"
	urlVolumeSuffix = "-url"
	// urlDir and dataDir are where the fetch container sees the target and the emptyDir.
	urlDir  = "/etc/taskdownload"
	dataDir = "/data"
)

// The defaults of the manager's --injection-size-limit and --injection-resources. fetch streams tar
// archives and holds little in memory; the limit leaves room for zip's central directory.
const (
	DefaultSizeLimit = "10Gi"
	DefaultResources = `{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"memory":"256Mi"}}`
)

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

// Config is what the operator's flags (and the chart's values) decide for every injected pod.
type Config struct {
	// Image runs /fetch; by default the manager's own image.
	Image string
	// ImagePullPolicy of the fetch init containers.
	ImagePullPolicy corev1.PullPolicy
	// Resources of each fetch init container, unless the pod's AnnotationFetchResources says otherwise.
	Resources corev1.ResourceRequirements
	// SizeLimit of each download's emptyDir, unless the pod's AnnotationSizeLimit says otherwise.
	SizeLimit resource.Quantity
	// Env is added to each fetch init container, for example HTTPS_PROXY and NO_PROXY
	// (--injection-env). Pods' readers can read it: no credentials.
	Env []corev1.EnvVar
}

// Source is what the webhook read of one TaskDownload the pod names.
type Source struct {
	// Name of the TaskDownload, in the pod's namespace.
	Name string
	// Target is the TaskDownload's spec.target, with its defaults applied.
	Target downloadsv1alpha1.Target
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

// Inject adds to pod what each source needs, skipping those a previous admission injected, and returns
// the names it added. It changes pod only when it returns no error; a *Refusal explains what to fix.
func Inject(pod *corev1.Pod, sources []Source, cfg Config) ([]string, error) {
	opts, err := podOptions(pod, cfg)
	if err != nil {
		return nil, err
	}
	done := Injected(pod)
	var todo []Source
	for _, s := range sources {
		if !slices.Contains(done, s.Name) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	out := pod.DeepCopy()
	var added []string
	for _, s := range todo {
		if err := injectOne(out, s, cfg, opts); err != nil {
			return nil, err
		}
		added = append(added, s.Name)
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[downloadsv1alpha1.AnnotationInjected] = strings.Join(append(done, added...), ",")
	*pod = *out
	return added, nil
}

// options are what the pod's annotations decide for all its downloads.
type options struct {
	resources  corev1.ResourceRequirements
	sizeLimit  resource.Quantity
	mountPath  string
	containers []string
}

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

func injectOne(pod *corev1.Pod, s Source, cfg Config, o options) error {
	fetchName := fetchPrefix + s.Name
	dataVolume := volumePrefix + s.Name
	urlVolume := dataVolume + urlVolumeSuffix
	mountPath := path.Join(o.mountPath, s.Name)
	spec := &pod.Spec

	for _, c := range allContainers(spec) {
		if c == fetchName {
			return refuse("the pod already has a container named %q, which injecting TaskDownload %q would add: "+
				"rename that container", c, s.Name)
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == dataVolume || v.Name == urlVolume {
			return refuse("the pod already has a volume named %q, which injecting TaskDownload %q would add: "+
				"rename that volume", v.Name, s.Name)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if !slices.Contains(o.containers, c.Name) {
			continue
		}
		for _, m := range c.VolumeMounts {
			if path.Clean(m.MountPath) == mountPath {
				return refuse("container %q already mounts %q at %s, where TaskDownload %q would be mounted: set "+
					"the annotation %s to another directory", c.Name, m.Name, mountPath, s.Name,
					downloadsv1alpha1.AnnotationMountPath)
			}
		}
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: dataVolume, MountPath: mountPath, ReadOnly: true})
	}

	gate := downloadsv1alpha1.SchedulingGatePrefix + s.Name
	if !slices.ContainsFunc(spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == gate }) {
		spec.SchedulingGates = append(spec.SchedulingGates, corev1.PodSchedulingGate{Name: gate})
	}
	spec.Volumes = append(spec.Volumes,
		corev1.Volume{Name: urlVolume, VolumeSource: targetVolume(s.Target)},
		corev1.Volume{Name: dataVolume, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(o.sizeLimit.DeepCopy())}}},
	)
	spec.InitContainers = append(spec.InitContainers, corev1.Container{
		Name:            fetchName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         []string{"/fetch"},
		Args: []string{
			"--url-file=" + path.Join(urlDir, downloadsv1alpha1.KeySignedURL),
			"--dest=" + dataDir,
			fmt.Sprintf("--max-bytes=%d", maxBytes(o.sizeLimit)),
		},
		Env:                      slices.Clone(cfg.Env),
		Resources:                *o.resources.DeepCopy(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          fetchSecurityContext(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: urlVolume, MountPath: urlDir, ReadOnly: true},
			{Name: dataVolume, MountPath: dataDir},
		},
	})
	return nil
}

// maxBytes is fetch's --max-bytes for an emptyDir of sizeLimit: a zip archive stays on the volume while
// it is extracted, so the two must fit together (tar streams, but the format is only known on arrival).
func maxBytes(sizeLimit resource.Quantity) int64 { return sizeLimit.Value() / 2 }

// targetVolume mounts the TaskDownload's target (ConfigMap or Secret). The gate holds the pod until the
// TaskDownload is Ready, so the object exists by the time the kubelet mounts it, and the kubelet updates
// the mounted SIGNED_URL when the operator refreshes it.
func targetVolume(t downloadsv1alpha1.Target) corev1.VolumeSource {
	return target.KindNamed(t.Kind).Volume(t.Name)
}

// fetchSecurityContext is the manager's own: non-root, read-only root, no privilege escalation, no
// capabilities, the runtime's seccomp profile. The restricted Pod Security Standard admits it. No user
// is set: the image's is numeric (65532), and a platform that assigns user IDs per namespace (OpenShift)
// or the pod's own runAsUser decides instead.
func fetchSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             new(true),
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func allContainers(spec *corev1.PodSpec) []string {
	names := make([]string, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers))
	for _, c := range spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	return names
}
