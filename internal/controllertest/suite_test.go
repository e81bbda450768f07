package controllertest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managertest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/suite"
)

const (
	apiKey       = "pk_test_SECRET_api_key_7f3a9c"
	pollInterval = 100 * time.Millisecond
	maxPoll      = 2 * time.Second
)

var (
	cfg       *rest.Config
	k8s       client.Client
	fake      *fakepixxel.Server
	logBuffer = &managertest.LogBuffer{}
	nsCounter atomic.Int64
	// testClock is the operator's clock: real time plus an offset tests can move forward.
	testClock = &offsetClock{}
)

// offsetClock is the real clock shifted by an adjustable offset.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *offsetClock) Advance(d time.Duration)         { c.offset.Add(int64(d)) }

func TestMain(m *testing.M) {
	// Debug level, so that the secret scan also covers V(1) logs.
	ctrl.SetLogger(zap.New(zap.WriteTo(logBuffer), zap.Level(zapcore.Level(-2))))
	os.Exit(suite.Main(m, setup))
}

func setup(e *suite.Env) error {
	cfg, k8s, fake = e.Config, e.Client, e.Fake
	o := manager.DefaultOptions()
	o.APIURL = fake.URL
	o.PollInterval, o.MaxPollInterval = pollInterval, maxPoll
	o.RequestTimeout = 2 * time.Second
	// Tests of refresh and expiry use URLs of a few seconds, shortened like the poll intervals.
	o.MinURLLifetime = time.Second
	o.APIQPS, o.APIBurst = 1000, 1000
	o.Clock = testClock
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	// The restart test starts a second manager in this process with the same controller name.
	o.Manager.Controller.SkipNameValidation = new(true)
	managerOptions = o
	var err error
	if stopManager, err = startManager(); err != nil {
		return err
	}
	e.Defer(func() { stopManager() })
	e.Check(func() error {
		// DUMP_LOGS=1 prints the operator's log, to debug a failing test.
		if os.Getenv("DUMP_LOGS") != "" {
			fmt.Fprintln(os.Stderr, logBuffer.String())
		}
		// Parallel tests finish after TestNoSecretsInLogsOrEvents; scan their output too.
		if leak := secretLeak(logBuffer.String()); leak != "" {
			return fmt.Errorf("the operator's logs contain %s", leak)
		}
		return nil
	})
	return nil
}

// managerOptions configure the operator under test; stopManager stops the running one.
var (
	managerOptions manager.Options
	stopManager    func()
)

// startManager starts the operator and waits for its cache; the returned function stops it.
func startManager() (func(), error) { return managertest.Start(cfg, managerOptions) }

// restartManager stops the operator and starts a new one, as a pod restart would: nothing but what
// the cluster holds survives.
func restartManager(t *testing.T) {
	t.Helper()
	stopManager()
	var err error
	stopManager, err = startManager()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}

// secretLeak names what printable output must never contain, if it does.
func secretLeak(out string) string {
	for _, s := range []string{apiKey, "X-Amz-Signature", "X-Amz-Credential"} {
		if strings.Contains(out, s) {
			return fmt.Sprintf("%q", s)
		}
	}
	return ""
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("test-%d", nsCounter.Add(1))}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// namespaceKey is the API key of a test's namespace: apiKey (which the log scan looks for) followed by
// the namespace, so that one test's 401 or 403, which opens the breaker of its key whatever Secret
// holds it, does not stop the calls of tests running beside it.
func namespaceKey(ns string) string { return apiKey + "-" + ns }

// createAPIKeySecret creates the Secret holding the namespace's API key under the default key.
func createAPIKeySecret(t *testing.T, ns, name string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"api-key": namespaceKey(ns)},
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), s)).To(Succeed())
}

// uniqueTask returns task IDs no other test uses, so that fake scripts do not collide.
func uniqueTask() fakepixxel.Task {
	n := nsCounter.Add(1)
	return fakepixxel.Task{WorkflowID: fmt.Sprintf("wf-%d", n), JobID: fmt.Sprintf("job-%d", n), TaskID: fmt.Sprintf("task-%d", n)}
}

func newTaskDownload(ns, name, secret string, task fakepixxel.Task) *downloadsv1alpha1.TaskDownload {
	return &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID:      downloadsv1alpha1.ResourceID(task.WorkflowID),
			JobID:           downloadsv1alpha1.ResourceID(task.JobID),
			TaskID:          downloadsv1alpha1.ResourceID(task.TaskID),
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: secret},
		},
	}
}

// get reads the TaskDownload's current state.
func get(g Gomega, td *downloadsv1alpha1.TaskDownload) *downloadsv1alpha1.TaskDownload {
	out := &downloadsv1alpha1.TaskDownload{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(td), out)).To(Succeed())
	return out
}

// condition returns a condition of the TaskDownload, or nil.
func condition(td *downloadsv1alpha1.TaskDownload, condType string) *metav1.Condition {
	return apimeta.FindStatusCondition(td.Status.Conditions, condType)
}

// waitFor polls the TaskDownload until check passes.
func waitFor(t *testing.T, td *downloadsv1alpha1.TaskDownload, check func(g Gomega, cur *downloadsv1alpha1.TaskDownload)) *downloadsv1alpha1.TaskDownload {
	t.Helper()
	var cur *downloadsv1alpha1.TaskDownload
	NewWithT(t).Eventually(func(g Gomega) {
		cur = get(g, td)
		check(g, cur)
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	return cur
}

// readyWithReason checks for Ready=True with the given reason.
func hasCondition(condType string, status metav1.ConditionStatus, reason string) func(Gomega, *downloadsv1alpha1.TaskDownload) {
	return func(g Gomega, cur *downloadsv1alpha1.TaskDownload) {
		c := condition(cur, condType)
		g.Expect(c).NotTo(BeNil(), "condition %s missing; conditions: %+v", condType, cur.Status.Conditions)
		g.Expect(c.Status).To(Equal(status), "condition %s: %s", condType, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "condition %s: %s", condType, c.Message)
		g.Expect(c.ObservedGeneration).To(Equal(cur.Generation))
		g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
	}
}

// startTaskDownload creates a namespace, its API-key Secret and a TaskDownload "scene" for a new task
// scripted with script's answers; edits adjust the TaskDownload before it is created.
func startTaskDownload(t *testing.T, script func(task fakepixxel.Task) []fakepixxel.Response,
	edits ...func(*downloadsv1alpha1.TaskDownload)) (*downloadsv1alpha1.TaskDownload, fakepixxel.Task) {
	t.Helper()
	ns := newNamespace(t)
	createAPIKeySecret(t, ns, "pixxel")
	task := uniqueTask()
	fake.Script(task, script(task)...)
	td := newTaskDownload(ns, "scene", "pixxel", task)
	for _, edit := range edits {
		edit(td)
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), td)).To(Succeed())
	return td, task
}

// answers scripts fixed answers.
func answers(responses ...fakepixxel.Response) func(fakepixxel.Task) []fakepixxel.Response {
	return func(fakepixxel.Task) []fakepixxel.Response { return responses }
}

func readyURL(task fakepixxel.Task) fakepixxel.Response {
	return fakepixxel.Ready(fakepixxel.SignedURL(task, time.Now(), time.Hour))
}

// withTarget sets spec.target.
func withTarget(target downloadsv1alpha1.Target) func(*downloadsv1alpha1.TaskDownload) {
	return func(td *downloadsv1alpha1.TaskDownload) { td.Spec.Target = &target }
}

// lifecycle drives TaskDownloads through the states tools judge health by and returns each as the
// operator left it: pending, then Ready (the same object), and failed on a 400.
func lifecycle(t *testing.T) (pending, ready, failed *downloadsv1alpha1.TaskDownload) {
	t.Helper()
	td, _ := startTaskDownload(t, func(task fakepixxel.Task) []fakepixxel.Response {
		return []fakepixxel.Response{fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Pending(), readyURL(task)}
	})
	pending = waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReconciling, metav1.ConditionTrue, downloadsv1alpha1.ReasonPending))
	ready = waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionTrue, downloadsv1alpha1.ReasonURLIssued))
	bad, _ := startTaskDownload(t, answers(fakepixxel.Fail(400, "bad_request", "unknown task")))
	failed = waitFor(t, bad, hasCondition(downloadsv1alpha1.ConditionStalled, metav1.ConditionTrue, downloadsv1alpha1.ReasonBadRequest))
	return pending, ready, failed
}

// setAPIKey replaces the API key in the namespace's "pixxel" Secret.
func setAPIKey(t *testing.T, ns, key string) {
	t.Helper()
	g := NewWithT(t)
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "pixxel"}, secret)).To(Succeed())
	secret.StringData = map[string]string{"api-key": key}
	g.Expect(k8s.Update(context.Background(), secret)).To(Succeed())
}
