// Package recorder records events.k8s.io/v1 Events from a bounded queue.
//
// client-go's events broadcaster (behind controller-runtime's GetEventRecorder) starts goroutines for
// every event and keeps each event it sent for 6 to 12 minutes, to merge repeats into a series. When
// thousands of TaskDownloads become Ready together that is thousands of goroutines and every event held
// in memory: 24 MiB of the manager's peak RSS with 10,000 objects (`make bench N=10000`). This operator
// emits an event only when an object's status changes, so it has no repeats to merge. Recorder keeps
// what it needs: events queue in a bounded channel and a few workers write them; when the queue is
// full, an event is dropped and counted, as client-go drops events when its own queue is full.
package recorder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"

	"github.com/pixxel-space/taskdownload-operator/internal/textutil"
)

// Defaults for Options.
const (
	DefaultQueueSize = 4096
	DefaultWorkers   = 32
	// maxNoteBytes is the API server's limit on an event's note.
	maxNoteBytes = 1024
	// maxTries bounds how often one event is sent while the API server cannot be reached.
	maxTries = 5
	// drainTimeout is how long Start keeps writing queued events after its context ends.
	drainTimeout = 5 * time.Second
)

// Drop reasons passed to Options.OnDrop.
const (
	DropQueueFull = "queue_full"
	DropRejected  = "rejected"
	DropRetries   = "retries_exhausted"
)

// Sink writes an event; *events.EventSinkImpl is one.
type Sink interface {
	Create(ctx context.Context, event *eventsv1.Event) (*eventsv1.Event, error)
}

var _ Sink = (*events.EventSinkImpl)(nil)

// Options configure a Recorder. Zero values take the defaults.
type Options struct {
	QueueSize int
	Workers   int
	// RetryDelay is the first wait before sending an event again after a transport error; it doubles.
	RetryDelay time.Duration
	// OnDrop is called with a Drop* reason for each event that is not written.
	OnDrop func(reason string)
	Logger logr.Logger
	Clock  clock.PassiveClock
}

// Recorder implements events.EventRecorder. Start it (it is a manager.Runnable) for events to be
// written; Eventf never blocks.
type Recorder struct {
	sink                Sink
	scheme              *runtime.Scheme
	reportingInstance   string
	reportingController string
	queue               chan *eventsv1.Event
	opts                Options
}

var _ events.EventRecorder = (*Recorder)(nil)

// New returns a Recorder whose events name reportingController, and reportingController-hostname as
// the instance, like client-go's.
func New(sink Sink, scheme *runtime.Scheme, reportingController, hostname string, opts Options) *Recorder {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.OnDrop == nil {
		opts.OnDrop = func(string) {}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Recorder{
		sink: sink, scheme: scheme, opts: opts,
		reportingController: reportingController,
		reportingInstance:   reportingController + "-" + hostname,
		queue:               make(chan *eventsv1.Event, opts.QueueSize),
	}
}

// Eventf queues an event about regarding (and, optionally, related).
func (r *Recorder) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	log := r.opts.Logger
	message := note
	if len(args) > 0 {
		message = fmt.Sprintf(note, args...)
	}
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		log.Error(err, "Cannot refer to the object; event not recorded", "reason", reason)
		return
	}
	if !util.ValidateEventType(eventtype) {
		log.Error(nil, "Unsupported event type; event not recorded", "type", eventtype, "reason", reason)
		return
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		if relatedRef, err = reference.GetReference(r.scheme, related); err != nil {
			log.V(1).Info("Cannot refer to the related object; recording the event without it", "err", err.Error())
		}
	}
	now := r.opts.Clock.Now()
	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      util.GenerateEventName(ref.Name, now.UnixNano()),
			Namespace: namespace,
		},
		EventTime:           metav1.MicroTime{Time: now},
		ReportingController: r.reportingController,
		ReportingInstance:   r.reportingInstance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relatedRef,
		Note:                textutil.Truncate(message, maxNoteBytes, "..."),
		Type:                eventtype,
	}
	log.V(1).Info(ev.Note, "type", eventtype, "reason", reason, "object", ref.Namespace+"/"+ref.Name)
	select {
	case r.queue <- ev:
	default:
		r.opts.OnDrop(DropQueueFull)
	}
}

// Start writes queued events until ctx ends, then for at most a few seconds more to flush the queue.
func (r *Recorder) Start(ctx context.Context) error {
	drainCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan struct{})
	for range r.opts.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			r.work(ctx, drainCtx)
		}()
	}
	<-ctx.Done()
	timer := time.AfterFunc(drainTimeout, cancel)
	defer timer.Stop()
	for range r.opts.Workers {
		<-done
	}
	return nil
}

// NeedLeaderElection is false: whichever replica emits an event writes it.
func (r *Recorder) NeedLeaderElection() bool { return false }

// work writes events until ctx ends and the queue is empty, or drainCtx ends.
func (r *Recorder) work(ctx, drainCtx context.Context) {
	for {
		select {
		case ev := <-r.queue:
			r.write(drainCtx, ev)
			continue
		default:
		}
		select {
		case ev := <-r.queue:
			r.write(drainCtx, ev)
		case <-ctx.Done():
			return
		}
	}
}

// write sends one event, again after transport errors; an event the API server rejects is dropped.
func (r *Recorder) write(ctx context.Context, ev *eventsv1.Event) {
	backoff := wait.Backoff{Duration: r.opts.RetryDelay, Factor: 2, Jitter: 0.25, Steps: maxTries}
	for try := 1; ; try++ {
		_, err := r.sink.Create(ctx, ev)
		switch {
		case err == nil:
			return
		case ctx.Err() != nil:
			r.opts.OnDrop(DropRetries)
			return
		case isRejection(err):
			r.opts.Logger.Error(err, "The API server rejected an event", "reason", ev.Reason,
				"object", ev.Regarding.Namespace+"/"+ev.Regarding.Name)
			r.opts.OnDrop(DropRejected)
			return
		case try >= maxTries:
			r.opts.Logger.Error(err, "Could not write an event", "reason", ev.Reason, "tries", try)
			r.opts.OnDrop(DropRetries)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff.Step()):
		}
	}
}

// isRejection tells a definite answer from the API server (the event is invalid, forbidden, or its
// namespace is gone) from a failure worth trying again (transport errors, timeouts, throttling).
func isRejection(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	switch {
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err):
		return false
	}
	return status.Status().Code != 0
}
