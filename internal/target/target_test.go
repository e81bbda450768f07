package target

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/yaml"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// Of applies the API's defaults: a target without a kind is a ConfigMap, one without a name takes the
// TaskDownload's.
func TestOf(t *testing.T) {
	td := func(target *v1.Target) *v1.TaskDownload {
		return &v1.TaskDownload{ObjectMeta: metav1.ObjectMeta{Name: "scene", Namespace: "team-a"},
			Spec: v1.TaskDownloadSpec{Target: target}}
	}
	for _, tc := range []struct {
		name   string
		target *v1.Target
		want   string
		ok     bool
	}{
		{"no target: status only", nil, "", false},
		{"defaults", &v1.Target{}, "ConfigMap scene", true},
		{"a named Secret", &v1.Target{Kind: v1.TargetSecret, Name: "url"}, "Secret url", true},
		{"a named ConfigMap", &v1.Target{Kind: v1.TargetConfigMap, Name: "url"}, "ConfigMap url", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ref, ok := Of(td(tc.target))
			g.Expect(ok).To(Equal(tc.ok))
			if !ok {
				return
			}
			g.Expect(ref.String()).To(Equal(tc.want))
			g.Expect(ref.Namespace).To(Equal("team-a"))
			again, _ := Of(td(tc.target))
			g.Expect(map[Ref]bool{ref: true}).To(HaveKey(again), "refs compare with ==, as the record of the operator's writes needs")
		})
	}
}

// Each kind writes and reads back the documented keys in its own object, is the object its
// GroupVersionKind names, and mounts as a volume of its kind.
func TestKinds(t *testing.T) {
	data := map[string]string{v1.KeySignedURL: "https://s/x?sig=1", v1.KeyStatus: "ready"}
	seen := map[v1.TargetKind]bool{}
	for _, k := range Kinds() {
		t.Run(string(k.TargetKind()), func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(seen).NotTo(HaveKey(k.TargetKind()), "listed once")
			seen[k.TargetKind()] = true
			g.Expect(map[Kind]bool{k: true}).To(HaveKey(KindNamed(k.TargetKind())), "kinds compare with ==")

			obj := k.New()
			k.SetData(obj, data)
			g.Expect(k.Data(obj)).To(Equal(data))
			data[v1.KeyStatus] = "changed after the write"
			g.Expect(k.Data(obj)).To(HaveKeyWithValue(v1.KeyStatus, "ready"), "the object holds its own copy")
			data[v1.KeyStatus] = "ready"

			g.Expect(k.GroupVersionKind().Kind).To(Equal(string(k.TargetKind())))
			g.Expect(Metadata(k).GroupVersionKind()).To(Equal(k.GroupVersionKind()))
			g.Expect(MetadataList(k).GroupVersionKind().Kind).To(Equal(string(k.TargetKind()) + "List"))

			vol := k.Volume("url")
			g.Expect(vol.ConfigMap != nil || vol.Secret != nil).To(BeTrue())
		})
	}
	g := NewWithT(t)
	g.Expect(KindNamed("")).To(Equal(KindNamed(v1.TargetConfigMap)), "the API's default")
	secret := KindNamed(v1.TargetSecret)
	g.Expect(secret.URLInStatus()).To(BeFalse(), "a signed URL is a bearer credential: a Secret keeps it out of status")
	g.Expect(KindNamed(v1.TargetConfigMap).URLInStatus()).To(BeTrue())
	obj := secret.New()
	secret.SetData(obj, data)
	g.Expect(obj.(*corev1.Secret).Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(secret.Volume("url").Secret.SecretName).To(Equal("url"))
	g.Expect(KindNamed(v1.TargetConfigMap).Volume("url").ConfigMap.Name).To(Equal("url"))
}

// Every kind spec.target.kind admits has its Kind: a value added to the API's enum without one would
// otherwise be published as a ConfigMap, the default, with its URL in status.
func TestKindsMatchTheCRD(t *testing.T) {
	g := NewWithT(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "downloads.pixxel.space_taskdownloads.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(data, &crd)).To(Succeed())
	var enum []string
	for _, v := range crd.Spec.Versions {
		kind := v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["target"].Properties["kind"]
		for _, e := range kind.Enum {
			var s string
			g.Expect(json.Unmarshal(e.Raw, &s)).To(Succeed())
			enum = append(enum, s)
		}
	}
	g.Expect(enum).NotTo(BeEmpty())
	g.Expect(enum).To(ConsistOf(strings.Split(KindNames(","), ",")), "config/crd's spec.target.kind enum and target.Kinds() differ")
}
