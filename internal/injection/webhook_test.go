package injection

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

func testWebhook(t *testing.T) *Webhook {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := downloadsv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	td := &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "scene-42"},
		Spec:       downloadsv1alpha1.TaskDownloadSpec{Target: &downloadsv1alpha1.Target{}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(td).Build()
	return &Webhook{Client: c, Decoder: admission.NewDecoder(scheme), Config: testConfig, Namespaces: []string{"team-a"}}
}

func request(namespace string, pod map[string]any) admission.Request {
	raw, _ := json.Marshal(pod)
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create, Namespace: namespace, Object: runtime.RawExtension{Raw: raw},
	}}
}

func labelledPod(extraSpec map[string]any) map[string]any {
	spec := map[string]any{"containers": []any{map[string]any{
		"name": "process", "image": "busybox", "fieldOfANewerRelease": true}}}
	maps.Copy(spec, extraSpec)
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"generateName": "process-",
			"labels":       map[string]any{downloadsv1alpha1.LabelInject: "true"},
			"annotations":  map[string]any{downloadsv1alpha1.AnnotationTaskDownloads: "scene-42"},
		},
		"spec": spec,
	}
}

// A field this webhook's Kubernetes types do not know (from a newer API server) is left alone: the
// patch only adds.
func TestPatchKeepsUnknownFields(t *testing.T) {
	g := NewWithT(t)
	resp := testWebhook(t).Handle(context.Background(),
		request("team-a", labelledPod(map[string]any{"schedulingPolicyOfTomorrow": "x"})))
	g.Expect(resp.Allowed).To(BeTrue(), "%v", resp.Result)
	g.Expect(resp.Patches).NotTo(BeEmpty())
	for _, p := range resp.Patches {
		g.Expect(p.Operation).NotTo(Equal("remove"), "patch %s %s", p.Operation, p.Path)
		g.Expect(p.Path).NotTo(Equal("/status"))
	}
}

func TestUnwatchedNamespaceIsRefused(t *testing.T) {
	g := NewWithT(t)
	resp := testWebhook(t).Handle(context.Background(), request("team-b", labelledPod(nil)))
	g.Expect(resp.Allowed).To(BeFalse())
	g.Expect(resp.Result.Message).To(HavePrefix(`namespace "team-b" is not one the operator watches (--watch-namespaces)`))
}

func TestUpdatesPassUntouched(t *testing.T) {
	g := NewWithT(t)
	req := request("team-a", labelledPod(nil))
	req.Operation = admissionv1.Update
	resp := testWebhook(t).Handle(context.Background(), req)
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Patches).To(BeEmpty())
}
