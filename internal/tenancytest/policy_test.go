package tenancytest

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

// refusedByPolicy checks that err is the least-privilege policy's refusal, not RBAC's.
func refusedByPolicy(g Gomega, err error, what string) {
	g.ExpectWithOffset(1, apierrors.IsForbidden(err)).To(BeTrue(), "%s: want Forbidden, got %v", what, err)
	g.ExpectWithOffset(1, err.Error()).To(ContainSubstring("ValidatingAdmissionPolicy"), what)
}

// patch changes obj with change and patches it as c (the operator's RBAC grants patch, not update).
func patch(c client.Client, obj client.Object, change func(client.Object)) error {
	before := obj.DeepCopyObject().(client.Object)
	change(obj)
	return c.Patch(context.Background(), obj, client.MergeFrom(before))
}

// The RBAC the operator needs lets it patch any pod and write any Secret or ConfigMap in the cluster.
// As its installed ServiceAccount (impersonated, on a real API server with config/rbac and the
// least-privilege component), it can still remove its own scheduling gates and write what it
// publishes, and nothing else.
func TestOperatorIdentityIsHeldToItsJob(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	op, err := client.New(operatorConfig(cfg), client.Options{Scheme: manager.NewScheme()})
	g.Expect(err).NotTo(HaveOccurred())
	ns := newNamespace(t, apiKey)
	const ownGate, otherGate = downloadsv1alpha1.SchedulingGatePrefix + "scene", "example.com/other"

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader", Labels: map[string]string{"app": "reader"}},
		Spec: corev1.PodSpec{
			Containers:      []corev1.Container{{Name: "main", Image: "busybox:1.37"}},
			SchedulingGates: []corev1.PodSchedulingGate{{Name: otherGate}, {Name: ownGate}},
		},
	}
	g.Expect(k8s.Create(ctx, pod)).To(Succeed())
	patchPod := func(patch string) error {
		target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod.Name}}
		return op.Patch(ctx, target, client.RawPatch(types.JSONPatchType, []byte(patch)))
	}
	t.Run("pods", func(t *testing.T) {
		g := NewWithT(t)
		for name, patch := range map[string]string{
			"image":                    `[{"op":"replace","path":"/spec/containers/0/image","value":"evil.example/miner:1"}]`,
			"image and own gate":       `[{"op":"replace","path":"/spec/containers/0/image","value":"evil.example/miner:1"},{"op":"remove","path":"/spec/schedulingGates/1"}]`,
			"another's gate":           `[{"op":"remove","path":"/spec/schedulingGates/0"}]`,
			"labels":                   `[{"op":"replace","path":"/metadata/labels/app","value":"other"}]`,
			"tolerations":              `[{"op":"add","path":"/spec/tolerations/-","value":{"operator":"Exists"}}]`,
			"node selector (gated)":    `[{"op":"add","path":"/spec/nodeSelector","value":{"node":"attacker"}}]`,
			"active deadline":          `[{"op":"add","path":"/spec/activeDeadlineSeconds","value":1}]`,
			"own gate and annotations": `[{"op":"remove","path":"/spec/schedulingGates/1"},{"op":"add","path":"/metadata/annotations","value":{"x":"y"}}]`,
		} {
			refusedByPolicy(g, patchPod(patch), name)
		}
		g.Expect(op.Delete(ctx, pod)).To(Satisfy(apierrors.IsForbidden), "no pod deletes")
		g.Expect(patchPod(`[{"op":"test","path":"/spec/schedulingGates/1/name","value":"`+ownGate+`"},`+
			`{"op":"remove","path":"/spec/schedulingGates/1"}]`)).To(Succeed(), "its own gate, and nothing else, may go")
		got := &corev1.Pod{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), got)).To(Succeed())
		g.Expect(got.Spec.SchedulingGates).To(Equal([]corev1.PodSchedulingGate{{Name: otherGate}}))
		g.Expect(got.Spec.Containers[0].Image).To(Equal("busybox:1.37"))
	})

	td := load.TaskDownload(ns, ns, 0)
	g.Expect(k8s.Create(ctx, td)).To(Succeed())
	labelled := map[string]string{downloadsv1alpha1.LabelManagedBy: downloadsv1alpha1.ManagedByValue}
	published := func(obj client.Object, name string) client.Object {
		obj.SetNamespace(ns)
		obj.SetName(name)
		obj.SetLabels(map[string]string{downloadsv1alpha1.LabelManagedBy: downloadsv1alpha1.ManagedByValue})
		g.Expect(controllerutil.SetControllerReference(td, obj, k8s.Scheme())).To(Succeed())
		return obj
	}
	t.Run("secrets and configmaps", func(t *testing.T) {
		g := NewWithT(t)
		for _, kind := range []func() client.Object{
			func() client.Object { return &corev1.Secret{} },
			func() client.Object { return &corev1.ConfigMap{} },
		} {
			// Someone else's object, unlabelled.
			foreign := kind()
			foreign.SetNamespace(ns)
			foreign.SetName("team-credentials")
			g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
			what := fmt.Sprintf("%T", foreign)
			refusedByPolicy(g, op.Delete(ctx, foreign), "deleting an unlabelled "+what)
			refusedByPolicy(g, patch(op, foreign, func(o client.Object) { o.SetLabels(map[string]string{"x": "y"}) }),
				"patching an unlabelled "+what)
			g.Expect(k8s.Delete(ctx, foreign)).To(Succeed())

			// Labelled, but controlled by no TaskDownload: still not the operator's to write.
			forged := kind()
			forged.SetNamespace(ns)
			forged.SetName("forged")
			forged.SetLabels(labelled)
			refusedByPolicy(g, op.Create(ctx, forged), "creating a labelled "+what+" no TaskDownload controls")
			// Owned by a TaskDownload but unlabelled.
			unlabelled := published(kind(), "unlabelled")
			unlabelled.SetLabels(nil)
			refusedByPolicy(g, op.Create(ctx, unlabelled), "creating an unlabelled "+what)

			// What it publishes: created, updated and deleted.
			mine := published(kind(), "mine")
			g.Expect(op.Create(ctx, mine)).To(Succeed())
			g.Expect(patch(op, mine, func(o client.Object) { o.SetAnnotations(map[string]string{"note": "updated"}) })).
				To(Succeed())
			refusedByPolicy(g, patch(op, mine, func(o client.Object) { o.SetLabels(map[string]string{}) }),
				"removing the label of a published "+what)
			g.Expect(op.Delete(ctx, mine)).To(Succeed())
		}
	})
}
