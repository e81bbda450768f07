package pixxel

import (
	"net/url"
	"strings"
)

// State is what a Download's status means for the caller.
type State int

const (
	// StatePending is any status that is neither ready nor a failure: ask again later.
	StatePending State = iota
	// StateReady means SignedURL can be used.
	StateReady
	// StateFailed means the platform will not produce the package.
	StateFailed
)

// State classifies the raw status, ignoring case: "ready" is ready; "failed", "error" and
// "cancelled" (or "canceled") are failures; anything else, "pending" included, is still pending.
func (d *Download) State() State {
	switch strings.ToLower(strings.TrimSpace(d.Status)) {
	case "ready":
		return StateReady
	case "failed", "error", "cancelled", "canceled":
		return StateFailed
	default:
		return StatePending
	}
}

// Validate checks that the answer belongs to the task asked for and, when ready, carries a usable URL.
// IDs the answer leaves out are not held against it. The error never quotes the URL.
func (d *Download) Validate(task Task) error {
	for _, f := range []struct{ name, got, want string }{
		{"id", d.ID, task.TaskID},
		{"job_id", d.JobID, task.JobID},
		{"workflow_id", d.WorkflowID, task.WorkflowID},
	} {
		if f.got != "" && f.got != f.want {
			return &InvalidResponseError{Reason: "the answer's " + f.name + " differs from the one requested"}
		}
	}
	if d.State() != StateReady {
		return nil
	}
	if d.SignedURL == "" {
		return &InvalidResponseError{Reason: "status is ready but signed_url is empty"}
	}
	u, err := url.Parse(d.SignedURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &InvalidResponseError{Reason: "signed_url is not an absolute http or https URL"}
	}
	return nil
}
