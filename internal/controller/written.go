package controller

import (
	"crypto/sha256"
	"maps"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// writtenTargets remembers, for each target the operator wrote, the resourceVersion its own last
// write left and a hash of the data it wrote. A target whose cached resourceVersion is still that one
// is untouched, without reading its data; any other version was written by someone else (or is a
// change to its metadata alone, which the data hash tells apart). A hash annotation on the object
// could not tell: whoever edits the data can copy it.
type writtenTargets struct {
	m sync.Map // the TaskDownload's key → writtenTarget
}

type writtenTarget struct {
	target          target.Ref
	resourceVersion string
	data            [sha256.Size]byte
}

// record notes a write of data, for the TaskDownload td, that left its target at resourceVersion.
func (w *writtenTargets) record(td types.NamespacedName, ref target.Ref, resourceVersion string, data map[string]string) {
	w.m.Store(td, writtenTarget{target: ref, resourceVersion: resourceVersion, data: hashData(data)})
}

// lookup returns what the operator last wrote to the TaskDownload's target, if this process wrote it.
func (w *writtenTargets) lookup(td types.NamespacedName, ref target.Ref) (writtenTarget, bool) {
	v, ok := w.m.Load(td)
	if !ok || v.(writtenTarget).target != ref {
		return writtenTarget{}, false
	}
	return v.(writtenTarget), true
}

// forget drops what is known of a TaskDownload that was deleted.
func (w *writtenTargets) forget(td types.NamespacedName) { w.m.Delete(td) }

// hashData hashes a target's keys and values, in key order.
func hashData(data map[string]string) [sha256.Size]byte {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(data[k]))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
