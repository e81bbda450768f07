package controller

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// cacheGuard keeps a reconcile from acting on a cached TaskDownload that predates the operator's own
// last status write to it. Such a copy still says "pending" after the URL was published, or lacks the
// refresh just made: acting on it would call the platform a second time for one answer, and a status
// patch computed from it would undo the write. Only objects this process wrote can be behind; one it
// never wrote was listed or watched after any earlier write.
type cacheGuard struct {
	// reader reads from the API server, bypassing the cache.
	reader client.Reader
	// writes holds, per object, the operator's last status write not yet seen in the cache.
	writes sync.Map // types.NamespacedName → statusWrite
}

// statusWrite is a status write: the object's resourceVersions before and after it.
type statusWrite struct{ from, to string }

// wrote records a status write that moved the object from one resourceVersion to another.
func (g *cacheGuard) wrote(key types.NamespacedName, from, to string) {
	g.writes.Store(key, statusWrite{from: from, to: to})
}

// forget drops what is known of an object (deleted).
func (g *cacheGuard) forget(key types.NamespacedName) { g.writes.Delete(key) }

// current tells whether td, as read from the cache, is at least as new as the operator's last status
// write to it. When it cannot tell from the resourceVersion alone, it asks the API server for the
// object's metadata: the copy is current when the stored resourceVersion is the same.
func (g *cacheGuard) current(ctx context.Context, td *downloadsv1alpha1.TaskDownload) (bool, error) {
	key := client.ObjectKeyFromObject(td)
	v, ok := g.writes.Load(key)
	if !ok {
		return true, nil
	}
	switch w := v.(statusWrite); td.ResourceVersion {
	case w.to:
		// The cache has caught up; every later copy is newer still.
		g.writes.CompareAndDelete(key, v)
		return true, nil
	case w.from:
		return false, nil
	}
	stored := &metav1.PartialObjectMetadata{}
	stored.SetGroupVersionKind(downloadsv1alpha1.GroupVersion.WithKind("TaskDownload"))
	if err := g.reader.Get(ctx, key, stored); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: the cache will say so shortly.
			return false, nil
		}
		return false, err
	}
	if stored.ResourceVersion != td.ResourceVersion {
		return false, nil
	}
	g.writes.CompareAndDelete(key, v)
	return true, nil
}
