package injection

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

var testConfig = Config{
	Image:           "registry.example/taskdownload-operator:v1",
	ImagePullPolicy: corev1.PullIfNotPresent,
	Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
	},
	SizeLimit: resource.MustParse("10Gi"),
}

func configMapSource(name string) Source {
	return Source{Name: name, Target: targetRef(downloadsv1alpha1.TargetConfigMap, name+"-download")}
}

// testPod is a Job's pod: an app container, a sidecar (an init container that keeps running), a plain
// init container and a volume of its own.
func testPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "process-", Namespace: "team-a", Annotations: annotations,
			Labels: map[string]string{downloadsv1alpha1.LabelInject: "true"},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				{Name: "prepare", Image: "busybox"},
				{Name: "proxy", Image: "envoy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
			},
			Containers: []corev1.Container{
				{Name: "process", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}},
				{Name: "report", Image: "busybox"},
			},
			Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func volume(pod *corev1.Pod, name string) *corev1.Volume {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return &pod.Spec.Volumes[i]
		}
	}
	return nil
}

func mountsOf(c *corev1.Container) map[string]corev1.VolumeMount {
	m := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		m[vm.Name] = vm
	}
	return m
}

func TestInjectOne(t *testing.T) {
	g := NewWithT(t)
	pod := testPod(map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"})
	added, err := Inject(pod, []Source{configMapSource("scene-42")}, testConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(added).To(Equal([]string{"scene-42"}))

	g.Expect(pod.Spec.SchedulingGates).To(Equal([]corev1.PodSchedulingGate{{Name: "downloads.pixxel.space/scene-42"}}))
	g.Expect(pod.Annotations).To(HaveKeyWithValue(downloadsv1alpha1.AnnotationInjected, "scene-42"))

	// The fetch init container runs last, after the pod's own init containers and sidecars.
	g.Expect(pod.Spec.InitContainers).To(HaveLen(3))
	fetch := pod.Spec.InitContainers[2]
	g.Expect(fetch.Name).To(Equal("fetch-scene-42"))
	g.Expect(fetch.Image).To(Equal(testConfig.Image))
	g.Expect(fetch.Command).To(Equal([]string{"/fetch"}))
	g.Expect(fetch.Args).To(Equal([]string{"--url-file=/etc/taskdownload/SIGNED_URL", "--dest=/data",
		"--max-bytes=5368709120"}))
	g.Expect(fetch.RestartPolicy).To(BeNil(), "not a sidecar: a Job's pod completes")
	g.Expect(fetch.Resources).To(Equal(testConfig.Resources))
	sc := fetch.SecurityContext
	g.Expect(*sc.RunAsNonRoot).To(BeTrue())
	g.Expect(*sc.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*sc.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(mountsOf(&fetch)).To(Equal(map[string]corev1.VolumeMount{
		"taskdownload-scene-42-url": {Name: "taskdownload-scene-42-url", MountPath: "/etc/taskdownload", ReadOnly: true},
		"taskdownload-scene-42":     {Name: "taskdownload-scene-42", MountPath: "/data"},
	}))

	g.Expect(volume(pod, "scratch")).NotTo(BeNil(), "the pod's own volume stays")
	g.Expect(volume(pod, "taskdownload-scene-42-url").ConfigMap.Name).To(Equal("scene-42-download"))
	g.Expect(volume(pod, "taskdownload-scene-42").EmptyDir.SizeLimit.String()).To(Equal("10Gi"))

	want := corev1.VolumeMount{Name: "taskdownload-scene-42", MountPath: "/var/run/taskdownloads/scene-42", ReadOnly: true}
	for _, name := range []string{"process", "report"} {
		g.Expect(mountsOf(container(pod.Spec.Containers, name))).To(HaveKeyWithValue("taskdownload-scene-42", want), name)
	}
	g.Expect(mountsOf(container(pod.Spec.Containers, "process"))).To(HaveKey("scratch"))
	for _, name := range []string{"prepare", "proxy"} {
		g.Expect(container(pod.Spec.InitContainers, name).VolumeMounts).To(BeEmpty(), "init containers and sidecars mount nothing")
	}
}

func TestInjectSeveral(t *testing.T) {
	g := NewWithT(t)
	pod := testPod(map[string]string{
		downloadsv1alpha1.AnnotationTaskDownloads: "scene-42, scene-43",
		downloadsv1alpha1.AnnotationContainers:    "report",
		downloadsv1alpha1.AnnotationMountPath:     "/inputs",
		downloadsv1alpha1.AnnotationSizeLimit:     "2Gi",
		downloadsv1alpha1.AnnotationFetchResources: `{"requests":{"cpu":"100m","memory":"64Mi"},` +
			`"limits":{"memory":"256Mi"}}`,
	})
	secret := Source{Name: "scene-43", Target: targetRef(downloadsv1alpha1.TargetSecret, "s43")}
	added, err := Inject(pod, []Source{configMapSource("scene-42"), secret}, testConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(added).To(Equal([]string{"scene-42", "scene-43"}))
	g.Expect(pod.Annotations).To(HaveKeyWithValue(downloadsv1alpha1.AnnotationInjected, "scene-42,scene-43"))
	g.Expect(pod.Spec.SchedulingGates).To(HaveLen(2))

	g.Expect(volume(pod, "taskdownload-scene-43-url").Secret.SecretName).To(Equal("s43"))
	g.Expect(volume(pod, "taskdownload-scene-43").EmptyDir.SizeLimit.String()).To(Equal("2Gi"))
	fetch := container(pod.Spec.InitContainers, "fetch-scene-43")
	g.Expect(fetch.Args).To(ContainElement("--max-bytes=1073741824"))
	g.Expect(fetch.Resources.Limits.Memory().String()).To(Equal("256Mi"))
	g.Expect(fetch.Resources.Requests.Cpu().String()).To(Equal("100m"))

	g.Expect(container(pod.Spec.Containers, "process").VolumeMounts).To(HaveLen(1), "only the named container mounts")
	g.Expect(mountsOf(container(pod.Spec.Containers, "report"))).To(Equal(map[string]corev1.VolumeMount{
		"taskdownload-scene-42": {Name: "taskdownload-scene-42", MountPath: "/inputs/scene-42", ReadOnly: true},
		"taskdownload-scene-43": {Name: "taskdownload-scene-43", MountPath: "/inputs/scene-43", ReadOnly: true},
	}))
}

func TestInjectIsIdempotent(t *testing.T) {
	g := NewWithT(t)
	pod := testPod(map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"})
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "downloads.pixxel.space/scene-42"}}
	_, err := Inject(pod, []Source{configMapSource("scene-42")}, testConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.Spec.SchedulingGates).To(HaveLen(1), "a gate written by hand is not added twice")

	once := pod.DeepCopy()
	added, err := Inject(pod, []Source{configMapSource("scene-42")}, testConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(added).To(BeEmpty())
	g.Expect(equality.Semantic.DeepEqual(pod, once)).To(BeTrue(), "re-admission adds nothing")

	// A TaskDownload added to the annotation later is injected alone.
	pod.Annotations[downloadsv1alpha1.AnnotationTaskDownloads] = "scene-42,scene-43"
	added, err = Inject(pod, []Source{configMapSource("scene-42"), configMapSource("scene-43")}, testConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(added).To(Equal([]string{"scene-43"}))
	g.Expect(pod.Spec.InitContainers).To(HaveLen(4))
	g.Expect(pod.Annotations).To(HaveKeyWithValue(downloadsv1alpha1.AnnotationInjected, "scene-42,scene-43"))
}

func TestInjectRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*corev1.Pod)
		config func(*Config)
		want   string
	}{
		{"a container already named fetch-<name>", func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "fetch-scene-42"})
		}, nil, `the pod already has a container named "fetch-scene-42", which injecting TaskDownload "scene-42" ` +
			`would add: rename that container`},
		{"a volume already named taskdownload-<name>", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "taskdownload-scene-42"})
		}, nil, `the pod already has a volume named "taskdownload-scene-42", which injecting TaskDownload ` +
			`"scene-42" would add: rename that volume`},
		{"the mount path taken", func(p *corev1.Pod) {
			p.Spec.Containers[1].VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: "/var/run/taskdownloads/scene-42/"}}
		}, nil, `container "report" already mounts "x" at /var/run/taskdownloads/scene-42, where TaskDownload ` +
			`"scene-42" would be mounted: set the annotation downloads.pixxel.space/mount-path to another directory`},
		{"an unknown container", func(p *corev1.Pod) {
			p.Annotations[downloadsv1alpha1.AnnotationContainers] = "process,proxy"
		}, nil, `annotation downloads.pixxel.space/containers: the pod has no app container "proxy" ` +
			`(its containers: process, report); downloads are mounted only into app containers`},
		{"a bad size limit", func(p *corev1.Pod) {
			p.Annotations[downloadsv1alpha1.AnnotationSizeLimit] = "lots"
		}, nil, `annotation downloads.pixxel.space/size-limit: "lots" is not a positive quantity such as "20Gi"`},
		{"no size limit at all", nil, func(c *Config) { c.SizeLimit = resource.Quantity{} },
			`no size for the downloads' emptyDir: set the annotation downloads.pixxel.space/size-limit, for example "20Gi"`},
		{"a relative mount path", func(p *corev1.Pod) {
			p.Annotations[downloadsv1alpha1.AnnotationMountPath] = "data"
		}, nil, `annotation downloads.pixxel.space/mount-path: "data" must be an absolute, clean path without ':', such as /data`},
		{"resources that are not JSON of resources", func(p *corev1.Pod) {
			p.Annotations[downloadsv1alpha1.AnnotationFetchResources] = `{"cpu":"1"}`
		}, nil, `annotation downloads.pixxel.space/fetch-resources: json: unknown field "cpu"; write a container's ` +
			`resources as JSON, for example ` + DefaultResources},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			pod := testPod(map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"})
			if tc.edit != nil {
				tc.edit(pod)
			}
			cfg := testConfig
			if tc.config != nil {
				tc.config(&cfg)
			}
			before := pod.DeepCopy()
			added, err := Inject(pod, []Source{configMapSource("scene-42")}, cfg)
			var refusal *Refusal
			g.Expect(err).To(BeAssignableToTypeOf(refusal))
			g.Expect(err.Error()).To(Equal(tc.want))
			g.Expect(added).To(BeEmpty())
			g.Expect(equality.Semantic.DeepEqual(pod, before)).To(BeTrue(), "a refused pod is left as it was")
		})
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
		err   string
	}{
		{"scene-42", []string{"scene-42"}, ""},
		{" scene-42 ,scene-43,,scene-42", []string{"scene-42", "scene-43"}, ""},
		{"", nil, "names no TaskDownload"},
		{"team-b/scene-42", nil, `"team-b/scene-42" cannot be injected: it must be the name of a TaskDownload in the pod's namespace`},
		{"scene.42", nil, `"scene.42" cannot be injected`},
		{strings.Repeat("a", MaxNameLength+1), nil, "a DNS label of at most 46 characters"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Names(testPod(map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: tc.value}))
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
	_, err := Names(testPod(nil))
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("downloads.pixxel.space/taskdownloads names no TaskDownload")))
}

// targetRef is where a TaskDownload in the pod's namespace publishes: an object of kind named name.
func targetRef(kind downloadsv1alpha1.TargetKind, name string) target.Ref {
	return target.Ref{Kind: target.KindNamed(kind), NamespacedName: types.NamespacedName{Namespace: "team-a", Name: name}}
}
