package controller

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

func TestTargetInSync(t *testing.T) {
	td := &v1.TaskDownload{Spec: v1.TaskDownloadSpec{WorkflowID: "w", JobID: "j", TaskID: "t"}}
	expires := &metav1.Time{Time: time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC)}
	pub := publication{signedURL: "https://s/x?sig=1", taskStatus: "ready", expiresAt: expires}
	data := func(edit func(map[string]string)) map[string]string {
		d := targetData(td, pub)
		if edit != nil {
			edit(d)
		}
		return d
	}
	cm, sec := target.KindNamed(v1.TargetConfigMap), target.KindNamed(v1.TargetSecret)
	configMap := func(d map[string]string) client.Object { return &corev1.ConfigMap{Data: d} }
	secret := func(d map[string]string) client.Object {
		s := &corev1.Secret{Data: map[string][]byte{}}
		for k, v := range d {
			s.Data[k] = []byte(v)
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		kind     target.Kind
		existing client.Object
		pub      publication
		want     bool
	}{
		{"absent", cm, nil, pub, false},
		{"ConfigMap holding the publication", cm, configMap(data(nil)), pub, true},
		{"Secret holding the publication", sec, secret(data(nil)), pub, true},
		{"URL edited", cm, configMap(data(func(d map[string]string) { d[v1.KeySignedURL] = "https://evil/x" })), pub, false},
		{"expiry edited", cm, configMap(data(func(d map[string]string) { d[v1.KeyExpiresAt] = "" })), pub, false},
		{"a key removed", cm, configMap(data(func(d map[string]string) { delete(d, v1.KeyTaskID) })), pub, false},
		{"a key added", cm, configMap(data(func(d map[string]string) { d["EXTRA"] = "x" })), pub, false},
		{"another task's IDs", cm, configMap(data(func(d map[string]string) { d[v1.KeyJobID] = "other" })), pub, false},
		// A Secret target's URL is not in status: any URL counts, none does not.
		{"URL unknown from status, target has one", sec, secret(data(nil)),
			publication{taskStatus: "ready", expiresAt: expires}, true},
		{"URL unknown from status, target has none", sec, secret(data(func(d map[string]string) { d[v1.KeySignedURL] = "" })),
			publication{taskStatus: "ready", expiresAt: expires}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(targetInSync(td, tc.kind, tc.existing, tc.pub)).To(Equal(tc.want))
		})
	}
}

// A cached target costs the same whatever its owner put on it: anyone may label their own objects as
// the operator's, with annotations of up to 256 KiB and any number of labels.
func TestKeepTargetMetadataIsBounded(t *testing.T) {
	g := NewWithT(t)
	controller := metav1.OwnerReference{APIVersion: "downloads.pixxel.space/v1alpha1", Kind: "TaskDownload",
		Name: "scene", UID: "u1", Controller: new(true)}
	in := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "scene", Namespace: "team-a", UID: "u2", ResourceVersion: "42",
		Labels: map[string]string{v1.LabelManagedBy: v1.ManagedByValue, v1.LabelTaskDownload: "scene",
			"bloat-1": strings.Repeat("x", 63), "bloat-2": strings.Repeat("y", 63)},
		Annotations:     map[string]string{"bloat": strings.Repeat("a", 200<<10)},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Other", Name: "x"}, controller},
		Finalizers:      []string{"example.com/hold"},
	}}
	out, err := keepTargetMetadata(in)
	g.Expect(err).NotTo(HaveOccurred())
	m := out.(*metav1.PartialObjectMetadata)
	g.Expect(m.ObjectMeta).To(Equal(metav1.ObjectMeta{
		Name: "scene", Namespace: "team-a", UID: "u2", ResourceVersion: "42",
		Labels:          map[string]string{v1.LabelManagedBy: v1.ManagedByValue, v1.LabelTaskDownload: "scene"},
		OwnerReferences: []metav1.OwnerReference{controller},
	}))
}
