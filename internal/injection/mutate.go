// Package injection adds what a pod needs to get a task's outputs: for each TaskDownload a pod names in
// the annotation downloads.pixxel.space/taskdownloads, a scheduling gate, a fetch init container, the
// target as a volume and an emptyDir mounted read-only into the app containers. Inject is the pure
// mutation; Webhook serves it as a mutating admission webhook.
package injection

import (
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
	Target target.Ref
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

// injectOne adds one TaskDownload's gate, volumes, mounts and fetch container to pod, or refuses when
// a name or mount path it needs is taken.
func injectOne(pod *corev1.Pod, s Source, cfg Config, o options) error {
	n := namesFor(s.Name, o)
	spec := &pod.Spec
	if err := checkNamesFree(spec, s.Name, n); err != nil {
		return err
	}
	if err := mountData(spec, s.Name, n, o); err != nil {
		return err
	}
	gate := downloadsv1alpha1.SchedulingGatePrefix + s.Name
	if !slices.ContainsFunc(spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == gate }) {
		spec.SchedulingGates = append(spec.SchedulingGates, corev1.PodSchedulingGate{Name: gate})
	}
	// The gate holds the pod until the TaskDownload is Ready, so its target exists by the time the
	// kubelet mounts it, and the kubelet updates the mounted SIGNED_URL when the operator refreshes it.
	spec.Volumes = append(spec.Volumes,
		corev1.Volume{Name: n.urlVolume, VolumeSource: s.Target.Kind.Volume(s.Target.Name)},
		corev1.Volume{Name: n.dataVolume, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(o.sizeLimit.DeepCopy())}}},
	)
	spec.InitContainers = append(spec.InitContainers, fetchContainer(n, cfg, o))
	return nil
}

// injectedNames are the names one TaskDownload's injection adds to a pod, and where the app
// containers see its download.
type injectedNames struct {
	fetch, dataVolume, urlVolume, mountPath string
}

func namesFor(name string, o options) injectedNames {
	data := volumePrefix + name
	return injectedNames{fetch: fetchPrefix + name, dataVolume: data, urlVolume: data + urlVolumeSuffix,
		mountPath: path.Join(o.mountPath, name)}
}

// checkNamesFree refuses a pod that already has a container or volume of a name the injection adds.
func checkNamesFree(spec *corev1.PodSpec, name string, n injectedNames) error {
	for _, c := range allContainers(spec) {
		if c == n.fetch {
			return refuse("the pod already has a container named %q, which injecting TaskDownload %q would add: "+
				"rename that container", c, name)
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == n.dataVolume || v.Name == n.urlVolume {
			return refuse("the pod already has a volume named %q, which injecting TaskDownload %q would add: "+
				"rename that volume", v.Name, name)
		}
	}
	return nil
}

// mountData mounts the download, read-only, into the app containers the pod chose, refusing one that
// already mounts something at that path.
func mountData(spec *corev1.PodSpec, name string, n injectedNames, o options) error {
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if !slices.Contains(o.containers, c.Name) {
			continue
		}
		for _, m := range c.VolumeMounts {
			if path.Clean(m.MountPath) == n.mountPath {
				return refuse("container %q already mounts %q at %s, where TaskDownload %q would be mounted: set "+
					"the annotation %s to another directory", c.Name, m.Name, n.mountPath, name,
					downloadsv1alpha1.AnnotationMountPath)
			}
		}
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: n.dataVolume, MountPath: n.mountPath, ReadOnly: true})
	}
	return nil
}

// fetchContainer runs /fetch from the manager's image: it reads the URL from the mounted target and
// downloads into the emptyDir.
func fetchContainer(n injectedNames, cfg Config, o options) corev1.Container {
	return corev1.Container{
		Name:            n.fetch,
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
			{Name: n.urlVolume, MountPath: urlDir, ReadOnly: true},
			{Name: n.dataVolume, MountPath: dataDir},
		},
	}
}

// maxBytes is fetch's --max-bytes for an emptyDir of sizeLimit: a zip archive stays on the volume while
// it is extracted, so the two must fit together (tar streams, but the format is only known on arrival).
func maxBytes(sizeLimit resource.Quantity) int64 { return sizeLimit.Value() / 2 }

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
