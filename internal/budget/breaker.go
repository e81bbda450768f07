package budget

import (
	"context"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// breaker stops the calls with a key the platform refuses (401, 403): they get the refusal back without
// a call, except for one probe per probe interval, and the breaker closes when a call is accepted or
// the Secret the key is read from changes.
type breaker struct {
	refused      *pixxel.Error // the 401/403 that opened the breaker, nil when closed
	nextProbe    time.Time
	probing      bool
	lastAccepted time.Time // the last 200 answer
	// secrets holds the resourceVersion last seen of each Secret the key was read from, when callers
	// say: a Secret that changes closes the breaker, while two Secrets holding the same key (in two
	// namespaces, say) are simply two sources of one key, not a change.
	secrets map[string]string
}

// admit decides on a call at now: while the breaker is open, the call is the probe when one is due and
// none is under way, and otherwise gets refused, a copy of the refusal, instead of being made.
func (br *breaker) admit(now time.Time) (probe bool, refused *pixxel.Error) {
	if br.refused == nil {
		return false, nil
	}
	if br.probing || now.Before(br.nextProbe) {
		return false, copyError(br.refused)
	}
	br.probing = true
	return true, nil
}

// probeEnded lets another call probe: the probe was answered, or not made.
func (br *breaker) probeEnded() { br.probing = false }

// accepted learns from a 200 answer at now, and reports whether it closed the breaker.
func (br *breaker) accepted(now time.Time) (closed bool) {
	br.lastAccepted = now
	return br.close()
}

// refuse learns from a 401 or 403 at now and reports whether it opened the breaker. It does not when
// the platform accepted the key for another call within the probe interval: the API answers 403 when
// the key may not access one workflow, job or task, and one TaskDownload naming another team's task
// must not stop every other TaskDownload using the key. A key that is revoked while in use is stopped
// once its last success is a probe interval old; until then each object retries it at
// --max-poll-interval, as without a breaker.
func (br *breaker) refuse(now time.Time, refusal *pixxel.Error, probeInterval time.Duration) (opened bool) {
	if br.refused == nil && !br.lastAccepted.IsZero() && now.Sub(br.lastAccepted) < probeInterval {
		return false
	}
	opened = br.refused == nil
	br.refused = copyError(refusal)
	br.nextProbe = now.Add(probeInterval)
	return opened
}

// close closes the breaker, and reports whether it was open.
func (br *breaker) close() bool {
	if br.refused == nil {
		return false
	}
	br.refused = nil
	return true
}

type secretVersionKey struct{}

// secretVersion is the Secret a call's key was read from, and the version read.
type secretVersion struct{ secret, resourceVersion string }

// maxSecretsPerKey bounds how many Secrets' versions are remembered for one key: beyond it, a change
// to another Secret holding the key no longer closes its breaker early (the probe still comes).
const maxSecretsPerKey = 1024

// WithSecretVersion tells the budget which Secret (namespace/name) the call's key was read from, and at
// which resourceVersion. When that Secret's version differs from the one seen before with the key, a
// breaker opened by a 401/403 is closed: the user changed the Secret, so the key is tried again at once.
// Keys are told apart by their content alone: the same key read from several Secrets shares one
// budget, and reading it from another Secret is no change.
func WithSecretVersion(ctx context.Context, secret, resourceVersion string) context.Context {
	return context.WithValue(ctx, secretVersionKey{}, secretVersion{secret: secret, resourceVersion: resourceVersion})
}

// secretVersionOf returns the Secret version the caller put in ctx, if any.
func secretVersionOf(ctx context.Context) (secretVersion, bool) {
	v, ok := ctx.Value(secretVersionKey{}).(secretVersion)
	return v, ok && v.resourceVersion != ""
}

// secretSeen records the version of a Secret the key was read from, and closes the breaker when that
// Secret changed since it was last seen; it reports whether it closed it.
func (br *breaker) secretSeen(v secretVersion) (closed bool) {
	prev, seen := br.secrets[v.secret]
	if seen && prev == v.resourceVersion {
		return false
	}
	if seen {
		closed = br.close()
	} else if len(br.secrets) >= maxSecretsPerKey {
		return false
	}
	if br.secrets == nil {
		br.secrets = map[string]string{}
	}
	br.secrets[v.secret] = v.resourceVersion
	return closed
}
