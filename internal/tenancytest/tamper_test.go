package tenancytest

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

const attackerURL = "https://attacker.example/payload.zip"

// targetEvents counts the TargetModified events about the TaskDownload.
func targetEvents(g Gomega, td *downloadsv1alpha1.TaskDownload) int {
	var list eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(td.Namespace))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == td.Name && e.Reason == downloadsv1alpha1.ReasonTargetModified {
			g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
			n += max(1, int(seriesCount(e)))
		}
	}
	return n
}

func seriesCount(e eventsv1.Event) int32 {
	if e.Series != nil {
		return e.Series.Count
	}
	return 1
}

// An attacker's URL written into a published Secret stayed there: any non-empty SIGNED_URL counted as
// in sync. Any change to a published target's data, ConfigMap or Secret, is undone within 2 s with
// one Warning event TargetModified; a change to its metadata alone is no tampering.
func TestTamperedTargetIsRestored(t *testing.T) {
	for _, kind := range target.Kinds() {
		t.Run(string(kind.TargetKind()), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t, apiKey)
			td := load.TaskDownload(ns, ns, 0)
			td.Spec.Target = &downloadsv1alpha1.Target{Kind: kind.TargetKind()}
			g.Expect(k8s.Create(ctx, td)).To(Succeed())
			g.Eventually(func(g Gomega) {
				cur := &downloadsv1alpha1.TaskDownload{}
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), cur)).To(Succeed())
				g.Expect(load.IsReady(cur)).To(BeTrue())
			}).WithTimeout(20 * time.Second).Should(Succeed())

			get := func(g Gomega) client.Object {
				obj := kind.New()
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(td), obj)).To(Succeed())
				return obj
			}
			dataOf := func(g Gomega) map[string]string { return kind.Data(get(g)) }
			edit := func(change func(map[string]string)) {
				obj := get(g)
				before := obj.DeepCopyObject().(client.Object)
				data := maps.Clone(kind.Data(obj))
				change(data)
				kind.SetData(obj, data)
				g.Expect(k8s.Patch(ctx, obj, client.MergeFrom(before))).To(Succeed())
			}
			published := dataOf(g)
			g.Expect(published[downloadsv1alpha1.KeySignedURL]).To(HavePrefix("https://"))

			// Metadata alone: not tampering.
			obj := get(g)
			before := obj.DeepCopyObject().(client.Object)
			obj.SetAnnotations(map[string]string{"team": "note"})
			g.Expect(k8s.Patch(ctx, obj, client.MergeFrom(before))).To(Succeed())
			g.Consistently(func(g Gomega) int { return targetEvents(g, td) }).WithTimeout(time.Second).Should(BeZero())

			for i, change := range []func(map[string]string){
				func(d map[string]string) { d[downloadsv1alpha1.KeySignedURL] = attackerURL },
				func(d map[string]string) { d["EXTRA"] = "x" },
			} {
				edit(change)
				tampered := time.Now()
				g.Eventually(func(g Gomega) {
					got := dataOf(g)
					g.Expect(got[downloadsv1alpha1.KeySignedURL]).NotTo(Equal(attackerURL))
					g.Expect(got).NotTo(HaveKey("EXTRA"))
					g.Expect(got[downloadsv1alpha1.KeySignedURL]).To(HavePrefix("https://"))
					g.Expect(got[downloadsv1alpha1.KeyTaskID]).To(Equal(published[downloadsv1alpha1.KeyTaskID]))
				}).WithTimeout(2*time.Second).WithPolling(20*time.Millisecond).Should(Succeed(), "undone within 2 s")
				t.Logf("%s edit %d undone after %s", kind.TargetKind(), i, time.Since(tampered).Round(time.Millisecond))
				g.Eventually(func(g Gomega) int { return targetEvents(g, td) }).Should(Equal(i+1),
					fmt.Sprintf("one TargetModified event per edit (edit %d)", i))
				g.Consistently(func(g Gomega) int { return targetEvents(g, td) }).WithTimeout(time.Second).Should(Equal(i + 1))
			}
		})
	}
}
