// Package target describes the objects a TaskDownload publishes its signed URL to. Each kind of object
// (ConfigMap, Secret) is one small type behind the Kind interface, in a file of its own with its RBAC
// marker; the controller, the manager's cache and the injecting webhook know kinds only through it.
//
// To add a kind: its value in api/v1alpha1 (TargetKind and the enum marker), a file here that
// implements Kind and is listed in Kinds, and its resource in the least-privilege admission policy.
// docs/architecture.md has the whole list.
package target

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// Kind is what the operator needs to know of one kind of object it publishes to. Implementations are
// comparable values (empty structs): Refs, and so kinds, are compared with ==.
type Kind interface {
	// TargetKind is the kind as spec.target.kind spells it.
	TargetKind() downloadsv1alpha1.TargetKind
	// GroupVersionKind is the object's, for metadata-only reads, lists and watches.
	GroupVersionKind() schema.GroupVersionKind
	// New returns an empty object of the kind, to read whole or to create.
	New() client.Object
	// Data returns the object's keys as strings, not to be modified (it may be the object's own map);
	// SetData replaces them with a copy of data.
	Data(obj client.Object) map[string]string
	SetData(obj client.Object, data map[string]string)
	// URLInStatus tells whether status.signedURL shows the published URL too. It does not for a kind
	// chosen to keep the URL from whoever can read the TaskDownload.
	URLInStatus() bool
	// Volume is the pod volume that mounts the object named name: its keys become files. A kind must
	// be one the kubelet can mount, since the injected fetch reads the URL from it.
	Volume(name string) corev1.VolumeSource
}

// kinds is every kind, looked up on each reconcile by KindNamed.
var kinds = []Kind{configMap{}, secret{}}

// Kinds lists every kind, for the watches, caches, indexes and pruning that cover them all.
func Kinds() []Kind { return slices.Clone(kinds) }

// KindNames spells every kind for a message, joined by sep: "ConfigMap or Secret".
func KindNames(sep string) string {
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, string(k.TargetKind()))
	}
	return strings.Join(names, sep)
}

// Ref is where a TaskDownload publishes: the kind of object, and its name in the TaskDownload's
// namespace. Refs compare with ==.
type Ref struct {
	Kind Kind
	types.NamespacedName
}

// Of returns where td publishes, with the API's defaults applied (kind ConfigMap, the TaskDownload's
// name), and false when spec.target is not set: the URL is then published in status only.
func Of(td *downloadsv1alpha1.TaskDownload) (Ref, bool) {
	t := td.Spec.Target
	if t == nil {
		return Ref{}, false
	}
	name := t.Name
	if name == "" {
		name = td.Name
	}
	return Ref{Kind: KindNamed(t.Kind), NamespacedName: types.NamespacedName{Namespace: td.Namespace, Name: name}}, true
}

// KindNamed returns the kind spec.target.kind names; empty is the API's default, ConfigMap. The CRD's
// enum admits no value without a kind in Kinds (TestKindsMatchTheCRD).
func KindNamed(name downloadsv1alpha1.TargetKind) Kind {
	for _, k := range kinds {
		if k.TargetKind() == name {
			return k
		}
	}
	return configMap{}
}

// String names the object for messages and logs, as "ConfigMap name".
func (r Ref) String() string { return string(r.Kind.TargetKind()) + " " + r.Name }

// Metadata is an empty object of the kind as a metadata-only cache holds it.
func Metadata(k Kind) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(k.GroupVersionKind())
	return m
}

// MetadataList is an empty list of the kind's objects as a metadata-only cache lists them.
func MetadataList(k Kind) *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	gvk := k.GroupVersionKind()
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	return l
}
