package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// scope is one reconcile's working state: the object as loaded (never modified: summarize derives the
// next status from it), what the steps learned, and what they observed for summarize.
type scope struct {
	td  *downloadsv1alpha1.TaskDownload
	key types.NamespacedName
	now time.Time
	log logr.Logger

	// apiKey and secretVersion are read by the API-key step.
	apiKey        string
	secretVersion string

	obs observation
}

// observation is what the steps saw. summarize turns it, with the previous status, into the next
// status; nothing else writes status.
type observation struct {
	// suspended: spec.suspend is true and nothing was attempted.
	suspended bool
	// failure stopped the reconcile short of a published URL (set from the steps' error).
	failure *failure

	// requested: the platform API was called, for the requested-at value requestedAt, on inputs
	// fingerprinted by inputs.
	requested   bool
	requestedAt string
	inputs      string
	// taskStatus is the platform's answer, bounded and clean; answered says there was one.
	taskStatus string
	answered   bool
	// pending: the answer was "not ready yet"; pendingSince is when the current wait began (kept
	// across transient failures, nil once the wait is over).
	pending      bool
	pendingSince *metav1.MicroTime
	// signedURL is the URL of a ready answer, before it is published.
	signedURL string

	// published is the URL this reconcile published, statusURL what status shows of it (empty for a
	// Secret target), targetDesc where it went; refreshed when it replaced a working one.
	published  *publication
	statusURL  string
	targetDesc string
	refreshed  bool
	// refreshClamped: spec.refreshBefore is too long for this URL's lifetime (see refreshAtFor).
	refreshClamped bool

	// withdrawn says why the published URL was removed, if it was.
	withdrawn withdrawal

	// kept: the published URL is fresh and in place, and everything it needs (the API key, the
	// target) was found; nothing was asked of the platform.
	kept bool
}

// withdrawal is why a published URL was removed from the target and status.
type withdrawal int

const (
	notWithdrawn withdrawal = iota
	// withdrawnExpired: the URL expired before a new one was obtained.
	withdrawnExpired
	// withdrawnOtherTask: the spec now names another task.
	withdrawnOtherTask
)

// inputs fingerprints what a request depends on besides the platform: the spec's generation, the
// API-key Secret's version and the requested-at annotation. A request the platform refused for good
// is not made again until the fingerprint changes; a hash keeps status small whatever the annotation.
func (s *scope) inputs() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d\x00%s\x00%s", s.td.Generation, s.secretVersion, s.requestedAt()))
	return hex.EncodeToString(sum[:12])
}

// requestedAt is the requested-at annotation's value.
func (s *scope) requestedAt() string {
	return s.td.Annotations[downloadsv1alpha1.AnnotationRequestedAt]
}

// inputsHandled tells whether status already describes this spec and requested-at value.
func (s *scope) inputsHandled() bool {
	st := s.td.Status
	return st.ObservedGeneration == s.td.Generation && st.LastHandledRequestedAt == s.requestedAt()
}
