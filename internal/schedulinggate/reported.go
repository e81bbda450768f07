package schedulinggate

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// reported remembers, per gated pod, the last reason recorded for each of its gates, so that a pod
// re-examined on every TaskDownload change gets one event per reason rather than one per look. It holds
// an entry only for cached pods that still carry a gate; after a restart, each reason is said once more.
type reported struct {
	mu   sync.Mutex
	pods map[types.NamespacedName]*podReports
}

type podReports struct {
	uid types.UID
	// reasons maps a TaskDownload name to the reason last recorded for the pod's gate on it.
	reasons map[string]string
}

// first records that reason is being said about the pod's gate on taskDownload, and reports whether it
// is new: not what was last said about this gate of this pod (a pod recreated under the same name is a
// new pod).
func (r *reported) first(pod types.NamespacedName, uid types.UID, taskDownload, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods == nil {
		r.pods = map[types.NamespacedName]*podReports{}
	}
	p := r.pods[pod]
	if p == nil || p.uid != uid {
		p = &podReports{uid: uid, reasons: map[string]string{}}
		r.pods[pod] = p
	}
	if p.reasons[taskDownload] == reason {
		return false
	}
	p.reasons[taskDownload] = reason
	return true
}

// forgetGate drops what was said about one gate of the pod, once it is removed.
func (r *reported) forgetGate(pod types.NamespacedName, taskDownload string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.pods[pod]; p != nil {
		delete(p.reasons, taskDownload)
		if len(p.reasons) == 0 {
			delete(r.pods, pod)
		}
	}
}

// forget drops everything said about the pod, once it is gone from the cache or carries no gate of ours.
func (r *reported) forget(pod types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pods, pod)
}

// len is the number of pods remembered.
func (r *reported) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pods)
}
