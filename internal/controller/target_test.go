package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
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
		existing client.Object
		pub      publication
		want     bool
	}{
		{"absent", nil, pub, false},
		{"ConfigMap holding the publication", configMap(data(nil)), pub, true},
		{"Secret holding the publication", secret(data(nil)), pub, true},
		{"URL edited", configMap(data(func(d map[string]string) { d[v1.KeySignedURL] = "https://evil/x" })), pub, false},
		{"expiry edited", configMap(data(func(d map[string]string) { d[v1.KeyExpiresAt] = "" })), pub, false},
		{"a key removed", configMap(data(func(d map[string]string) { delete(d, v1.KeyTaskID) })), pub, false},
		{"a key added", configMap(data(func(d map[string]string) { d["EXTRA"] = "x" })), pub, false},
		{"another task's IDs", configMap(data(func(d map[string]string) { d[v1.KeyJobID] = "other" })), pub, false},
		// A Secret target's URL is not in status: any URL counts, none does not.
		{"URL unknown from status, target has one", secret(data(nil)),
			publication{taskStatus: "ready", expiresAt: expires}, true},
		{"URL unknown from status, target has none", secret(data(func(d map[string]string) { d[v1.KeySignedURL] = "" })),
			publication{taskStatus: "ready", expiresAt: expires}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(targetInSync(td, tc.existing, tc.pub)).To(Equal(tc.want))
		})
	}
}
