package recorder_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/recorder"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

func taskDownload(ns, name string) *downloadsv1alpha1.TaskDownload {
	return &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID: "wf", JobID: "job", TaskID: "task",
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "key"},
		},
	}
}

// start runs r until the returned stop function is called; stop waits for Start to return.
func start(r *recorder.Recorder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// Events land on a real API server as events.k8s.io/v1 Events about the object, with the fields
// `kubectl describe` and `kubectl events` show; a note over the server's 1 KiB limit is cut rather than
// the event being rejected; events still queued at shutdown are written.
func TestRecorderWritesEventsToTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	env, cfg, err := envtestutil.Start()
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()
	k8s, err := client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	g.Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "events"}})).To(Succeed())
	td := taskDownload("events", "td")
	g.Expect(k8s.Create(ctx, td)).To(Succeed())

	evClient, err := eventsv1client.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	var dropped atomic.Int64
	r := recorder.New(&events.EventSinkImpl{Interface: evClient}, manager.NewScheme(), "test-controller", "host-1",
		recorder.Options{OnDrop: func(string) { dropped.Add(1) }})

	// Queued before the recorder starts and written when it stops: nothing queued is lost at shutdown.
	r.Eventf(td, nil, corev1.EventTypeNormal, "URLIssued", "Publish", "Signed URL published in %s", "ConfigMap td")
	r.Eventf(td, nil, corev1.EventTypeWarning, "InvalidResponse", "Reconcile", "%s", strings.Repeat("é", 2000))
	start(r)()

	var list eventsv1.EventList
	g.Expect(k8s.List(ctx, &list, client.InNamespace("events"))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(2))
	byReason := map[string]eventsv1.Event{}
	for _, e := range list.Items {
		byReason[e.Reason] = e
	}
	issued := byReason["URLIssued"]
	g.Expect(issued.Type).To(Equal(corev1.EventTypeNormal))
	g.Expect(issued.Action).To(Equal("Publish"))
	g.Expect(issued.Note).To(Equal("Signed URL published in ConfigMap td"))
	g.Expect(issued.ReportingController).To(Equal("test-controller"))
	g.Expect(issued.ReportingInstance).To(Equal("test-controller-host-1"))
	g.Expect(issued.Regarding.Kind).To(Equal("TaskDownload"))
	g.Expect(issued.Regarding.Name).To(Equal("td"))
	g.Expect(issued.Regarding.UID).To(Equal(td.UID))
	g.Expect(issued.EventTime.IsZero()).To(BeFalse())

	long := byReason["InvalidResponse"]
	g.Expect(len(long.Note)).To(BeNumerically("<=", 1024))
	g.Expect(long.Note).To(HaveSuffix("é..."), "cut on a character boundary")
	g.Expect(dropped.Load()).To(BeZero())
}

// blockingSink holds every write until released, counting them.
type blockingSink struct {
	release chan struct{}
	writes  atomic.Int64
}

func (s *blockingSink) Create(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.writes.Add(1)
	return ev, nil
}

// A burst larger than the queue while the API server is slow never blocks the caller (a reconcile):
// the excess is dropped and counted, and the memory held is bounded by the queue.
func TestRecorderDropsWhenTheQueueIsFull(t *testing.T) {
	g := NewWithT(t)
	sink := &blockingSink{release: make(chan struct{})}
	var mu sync.Mutex
	drops := map[string]int{}
	r := recorder.New(sink, manager.NewScheme(), "test", "host", recorder.Options{
		QueueSize: 5, Workers: 1,
		OnDrop: func(reason string) { mu.Lock(); drops[reason]++; mu.Unlock() },
	})
	stop := start(r)

	began := time.Now()
	for range 100 {
		r.Eventf(taskDownload("ns", "td"), nil, corev1.EventTypeNormal, "URLIssued", "Publish", "published")
	}
	g.Expect(time.Since(began)).To(BeNumerically("<", time.Second), "Eventf must not wait for the API server")
	close(sink.release)
	stop()

	mu.Lock()
	defer mu.Unlock()
	// One event is being written while the queue holds five more.
	g.Expect(sink.writes.Load()).To(BeNumerically("<=", 6))
	g.Expect(sink.writes.Load() + int64(drops[recorder.DropQueueFull])).To(BeEquivalentTo(100))
}

// failingSink answers each write with the next error of a script (nil when it runs out).
type failingSink struct {
	mu     sync.Mutex
	errs   []error
	writes int
}

func (s *failingSink) Create(_ context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if len(s.errs) == 0 {
		return ev, nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return nil, err
}

// Transport errors and an overloaded API server are tried again with a growing delay; an event the
// API server refuses (invalid, forbidden, namespace gone) is not sent again.
func TestRecorderRetriesOnlyWhatMaySucceed(t *testing.T) {
	gr := schema.GroupResource{Group: "events.k8s.io", Resource: "events"}
	cases := []struct {
		name       string
		errs       []error
		wantWrites int
		wantDrop   string
	}{
		{"connection refused, then written", []error{errors.New("connection refused"), errors.New("connection refused")}, 3, ""},
		{"throttled, then written", []error{apierrors.NewTooManyRequests("slow down", 1)}, 2, ""},
		{"namespace terminating", []error{apierrors.NewForbidden(gr, "x", errors.New("namespace is terminating"))}, 1, recorder.DropRejected},
		{"invalid", []error{apierrors.NewBadRequest("note too long")}, 1, recorder.DropRejected},
		{"unreachable", []error{errors.New("eof"), errors.New("eof"), errors.New("eof"), errors.New("eof"), errors.New("eof")}, 5, recorder.DropRetries},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			sink := &failingSink{errs: tc.errs}
			var drop atomic.Value
			r := recorder.New(sink, manager.NewScheme(), "test", "host", recorder.Options{
				RetryDelay: time.Millisecond,
				OnDrop:     func(reason string) { drop.Store(reason) },
			})
			r.Eventf(taskDownload("ns", "td"), nil, corev1.EventTypeWarning, "Forbidden", "Reconcile", "denied")
			start(r)()
			g.Expect(sink.writes).To(Equal(tc.wantWrites))
			if tc.wantDrop == "" {
				g.Expect(drop.Load()).To(BeNil())
			} else {
				g.Expect(drop.Load()).To(Equal(tc.wantDrop))
			}
		})
	}
}
