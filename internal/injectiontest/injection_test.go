// Package injectiontest serves the injecting admission webhook for real: a kube-apiserver (envtest) with
// the MutatingWebhookConfiguration of config/components/injection calls the manager's webhook server
// over TLS, and the tests create pods as a workload controller would.
package injectiontest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/injection"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managertest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/suite"
)

const (
	// ownNamespace is the operator's, which config/components/injection leaves out of the webhook.
	ownNamespace = "taskdownload-operator-system"
	image        = "registry.example/taskdownload-operator:v1"
)

var (
	k8s        client.Client
	restConfig *rest.Config
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	webhooks := func(env *envtest.Environment) {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(envtestutil.RepoRoot(), "config", "components", "injection", "webhook.yaml")},
		}
	}
	os.Exit(suite.Main(m, setup, webhooks))
}

func setup(e *suite.Env) error {
	k8s, restConfig = e.Client, e.Config
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ownNamespace}}); err != nil {
		return err
	}
	w := e.Environment.WebhookInstallOptions
	o := manager.DefaultOptions()
	o.APIURL = e.Fake.URL
	o.EnableSchedulingGates = true
	o.Injection = &injection.SetupOptions{
		Config: injection.Config{
			Image: image, ImagePullPolicy: corev1.PullIfNotPresent, SizeLimit: resource.MustParse("4Gi"),
		},
		Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir,
		OwnNamespace: ownNamespace,
	}
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	stop, err := managertest.Start(e.Config, o)
	if err != nil {
		return err
	}
	e.Defer(stop)
	return nil
}

var namespaces int

// namespace creates a namespace of the test's own.
func namespace(t *testing.T) string {
	t.Helper()
	namespaces++
	ns := fmt.Sprintf("inject-%d", namespaces)
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func taskDownload(ns, name string, target *downloadsv1alpha1.Target) *downloadsv1alpha1.TaskDownload {
	return &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID: "wf-1", JobID: "job-1", TaskID: "task-1",
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel-api-key"},
			Target:          target,
			// No call to the platform: the webhook only reads the spec.
			Suspend: true,
		},
	}
}

// podFromTemplate creates a pod as a Deployment's ReplicaSet would: from the template, with a generated
// name.
func podFromTemplate(ctx context.Context, ns string, labels, annotations map[string]string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "process-", Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "process", Image: "busybox:1.37"}, {Name: "report", Image: "busybox:1.37"},
		}},
	}
	return pod, k8s.Create(ctx, pod)
}

var injectLabel = map[string]string{downloadsv1alpha1.LabelInject: "true"}

func TestLabelledPodIsInjected(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := namespace(t)
	g.Expect(k8s.Create(ctx, taskDownload(ns, "scene-42", &downloadsv1alpha1.Target{}))).To(Succeed())
	g.Expect(k8s.Create(ctx, taskDownload(ns, "scene-43",
		&downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret, Name: "s43"}))).To(Succeed())

	pod, err := podFromTemplate(ctx, ns, injectLabel, map[string]string{
		downloadsv1alpha1.AnnotationTaskDownloads: "scene-42,scene-43",
		downloadsv1alpha1.AnnotationContainers:    "process",
	})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(pod.Spec.SchedulingGates).To(ConsistOf(
		corev1.PodSchedulingGate{Name: "downloads.pixxel.space/scene-42"},
		corev1.PodSchedulingGate{Name: "downloads.pixxel.space/scene-43"}))
	g.Expect(pod.Annotations).To(HaveKeyWithValue(downloadsv1alpha1.AnnotationInjected, "scene-42,scene-43"))
	inits := make([]string, 0, len(pod.Spec.InitContainers))
	for _, c := range pod.Spec.InitContainers {
		inits = append(inits, c.Name)
		g.Expect(c.Image).To(Equal(image))
		g.Expect(c.Command).To(Equal([]string{"/fetch"}))
	}
	g.Expect(inits).To(Equal([]string{"fetch-scene-42", "fetch-scene-43"}))
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	g.Expect(volumes["taskdownload-scene-42-url"].ConfigMap.Name).To(Equal("scene-42"), "the target's name defaults to the TaskDownload's")
	g.Expect(volumes["taskdownload-scene-43-url"].Secret.SecretName).To(Equal("s43"))
	g.Expect(volumes["taskdownload-scene-42"].EmptyDir.SizeLimit.String()).To(Equal("4Gi"))
	g.Expect(pod.Spec.Containers[0].VolumeMounts).To(ContainElement(corev1.VolumeMount{
		Name: "taskdownload-scene-42", MountPath: "/var/run/taskdownloads/scene-42", ReadOnly: true}))
	g.Expect(pod.Spec.Containers[1].VolumeMounts).To(BeEmpty(), "only the containers named mount the downloads")

	// An update passes untouched: the webhook only mutates creation.
	pod.Labels["processed"] = "yes"
	g.Expect(k8s.Update(ctx, pod)).To(Succeed())
}

func TestUnlabelledPodIsUntouched(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t)
	// The annotation alone does nothing: without the label the API server never calls the webhook, so the
	// TaskDownload need not even exist.
	pod, err := podFromTemplate(t.Context(), ns, nil, map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.Spec.InitContainers).To(BeEmpty())
	g.Expect(pod.Spec.SchedulingGates).To(BeEmpty())
	g.Expect(pod.Annotations).NotTo(HaveKey(downloadsv1alpha1.AnnotationInjected))
}

func TestRefusals(t *testing.T) {
	ns := namespace(t)
	g := NewWithT(t)
	ctx := t.Context()
	noTarget := taskDownload(ns, "no-target", nil)
	g.Expect(k8s.Create(ctx, noTarget)).To(Succeed())
	g.Expect(k8s.Create(ctx, taskDownload(ns, "scene-42", &downloadsv1alpha1.Target{}))).To(Succeed())
	const denied = `admission webhook "inject.downloads.pixxel.space" denied the request: `
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        string
	}{
		{"a TaskDownload that does not exist", map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42,nope"},
			`TaskDownload "nope" (annotation downloads.pixxel.space/taskdownloads) does not exist in namespace "` + ns +
				`": create it, or remove it from the annotation; a workload controller retries the pod`},
		{"a TaskDownload without a target", map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "no-target"},
			`TaskDownload "no-target" has no spec.target, so a pod has no object to read its URL from: set spec.target ` +
				`(kind ConfigMap or Secret)`},
		{"no TaskDownload named", nil, `the pod is labelled downloads.pixxel.space/inject=true but its annotation ` +
			`downloads.pixxel.space/taskdownloads names no TaskDownload: add the annotation (for example ` +
			`"scene-42,scene-43"), or remove the label`},
		{"an unknown container", map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42",
			downloadsv1alpha1.AnnotationContainers: "main"}, `annotation downloads.pixxel.space/containers: the pod ` +
			`has no app container "main" (its containers: process, report); downloads are mounted only into app containers`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := podFromTemplate(ctx, ns, injectLabel, tc.annotations)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(HaveSuffix(denied + tc.want))
		})
	}

	// The refusal is also a Warning event on the TaskDownload, where its owner looks.
	g.Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, ev := range list.Items {
			if ev.Regarding.Name == noTarget.Name && ev.Reason == injection.ReasonInjectionRefused {
				g.Expect(ev.Type).To(Equal(corev1.EventTypeWarning))
				notes = append(notes, ev.Note)
			}
		}
		g.Expect(notes).To(ContainElement(And(HavePrefix("Pod process-<generated> was refused: "),
			ContainSubstring("has no spec.target"))))
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// A labelled pod the webhook never sees (here the operator's own namespace, which the webhook
// configuration leaves out) gets a Warning event: it would otherwise start without its download.
func TestBypassIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	pod, err := podFromTemplate(ctx, ownNamespace, injectLabel,
		map[string]string{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.Spec.InitContainers).To(BeEmpty())
	g.Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ownNamespace))).To(Succeed())
		var reasons []string
		for _, ev := range list.Items {
			if ev.Regarding.Name == pod.Name {
				reasons = append(reasons, ev.Reason+" "+ev.Type)
			}
		}
		g.Expect(reasons).To(ConsistOf(injection.ReasonInjectionBypassed + " Warning"))
	}).WithTimeout(10 * time.Second).Should(Succeed())
}
