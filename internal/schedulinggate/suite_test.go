package schedulinggate_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/schedulinggate"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managertest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/suite"
)

const (
	apiKey = "pk_test_gates_key"
	// fieldOwner marks the test's own writes, to tell them from the operator's in managedFields.
	fieldOwner = "gates-test"
	// unwatched is a namespace outside the operator's --watch-namespaces.
	unwatched = "gates-unwatched"
)

var (
	cfg  *rest.Config
	k8s  client.Client
	fake *fakepixxel.Server
	// watched are the operator's namespaces, one per test; next hands them out.
	watched = []string{"gates-1", "gates-2", "gates-3", "gates-4", "gates-5", "gates-6", "gates-7", "gates-8"}
	next    = make(chan string, len(watched))
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	os.Exit(suite.Main(m, setup))
}

func setup(e *suite.Env) error {
	cfg, k8s, fake = e.Config, e.Client, e.Fake
	fake.RequireAPIKey(apiKey)
	for _, ns := range append([]string{unwatched}, watched...) {
		if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	for _, ns := range watched {
		next <- ns
	}

	o := manager.DefaultOptions()
	o.APIURL = fake.URL
	o.PollInterval, o.MaxPollInterval = 100*time.Millisecond, 500*time.Millisecond
	o.APIQPS, o.APIBurst = 1000, 1000
	o.WatchNamespaces = watched
	o.EnableSchedulingGates = true
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	stop, err := managertest.Start(cfg, o)
	if err != nil {
		return err
	}
	e.Defer(stop)
	return nil
}

// namespace returns a watched namespace of its own for the test, with the API-key Secret in it.
func namespace(t *testing.T) string {
	t.Helper()
	var ns string
	select {
	case ns = <-next:
	default:
		t.Fatal("out of watched namespaces: add one to the list in suite_test.go")
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pixxel"},
		StringData: map[string]string{"api-key": apiKey},
	}, client.FieldOwner(fieldOwner))).To(Succeed())
	return ns
}

// taskDownload creates TaskDownload name for a new task whose platform answers are script's.
func taskDownload(t *testing.T, ns, name string, script ...fakepixxel.Response) fakepixxel.Task {
	t.Helper()
	task := fakepixxel.Task{WorkflowID: "wf-" + ns, JobID: "job", TaskID: "task-" + name}
	fake.Script(task, script...)
	td := &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID: downloadsv1alpha1.ResourceID(task.WorkflowID), JobID: downloadsv1alpha1.ResourceID(task.JobID),
			TaskID:          downloadsv1alpha1.ResourceID(task.TaskID),
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel"},
			Target:          &downloadsv1alpha1.Target{},
		},
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), td, client.FieldOwner(fieldOwner))).To(Succeed())
	return task
}

func ready(task fakepixxel.Task) fakepixxel.Response {
	return fakepixxel.Ready(fakepixxel.SignedURL(task, time.Now(), time.Hour))
}

// waitForCondition waits until the namespace's TaskDownload "scene" has the condition, True for its
// current spec, and returns when the test saw it.
func waitForCondition(t *testing.T, ns, condType string) time.Time {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		td := &downloadsv1alpha1.TaskDownload{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "scene"}, td)).To(Succeed())
		c := apimeta.FindStatusCondition(td.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.ObservedGeneration).To(Equal(td.Generation))
	}).WithTimeout(20 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	return time.Now()
}

// createPod creates an unscheduled pod with these scheduling gates.
func createPod(t *testing.T, ns, name string, gates ...string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"note": "kept"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: "busybox:1.37"}},
		},
	}
	for _, g := range gates {
		pod.Spec.SchedulingGates = append(pod.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: g})
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), pod, client.FieldOwner(fieldOwner))).To(Succeed())
	return pod
}

// gatesOf reads a pod's scheduling gates from the API server.
func gatesOf(g Gomega, pod *corev1.Pod) []string {
	cur := &corev1.Pod{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), cur)).To(Succeed())
	names := make([]string, 0, len(cur.Spec.SchedulingGates))
	for _, gate := range cur.Spec.SchedulingGates {
		names = append(names, gate.Name)
	}
	return names
}

// podEvents lists the events about a pod with this reason.
func podEvents(g Gomega, pod *corev1.Pod, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(pod.Namespace))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "Pod" && e.Regarding.Name == pod.Name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// gate is our gate for TaskDownload name.
func gate(name string) string { return schedulinggate.GateName(name) }
