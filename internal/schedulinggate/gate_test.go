package schedulinggate

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

func gates(names ...string) []corev1.PodSchedulingGate {
	out := make([]corev1.PodSchedulingGate, 0, len(names))
	for _, n := range names {
		out = append(out, corev1.PodSchedulingGate{Name: n})
	}
	return out
}

// Only gates with our exact prefix and a name count; look-alike domains and the bare prefix do not.
func TestGatedOn(t *testing.T) {
	g := NewWithT(t)
	pod := &corev1.Pod{Spec: corev1.PodSpec{SchedulingGates: gates(
		"example.com/foo", "downloads.pixxel.space/a", "downloads.pixxel.space.evil/b",
		"evil.downloads.pixxel.space/c", "downloads.pixxel.space/", "downloads.pixxel.space/d")}}
	g.Expect(gatedOn(pod)).To(Equal([]string{"a", "d"}))
	g.Expect(gatedOn(&corev1.Pod{})).To(BeEmpty())
	g.Expect(GateName("scene-42")).To(Equal("downloads.pixxel.space/scene-42"))
}

// The cache keeps a pod's identity, version and gates, and nothing that grows with the pod's spec.
func TestTrimPodKeepsOnlyWhatTheControllerReads(t *testing.T) {
	g := NewWithT(t)
	full := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "p", Namespace: "ns", UID: "u-1", ResourceVersion: "42", Generation: 3,
			Labels:          map[string]string{"app": "x"},
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			OwnerReferences: []metav1.OwnerReference{{Name: "job"}},
		},
		Spec: corev1.PodSpec{
			SchedulingGates: gates("downloads.pixxel.space/a"),
			Containers:      []corev1.Container{{Name: "c", Image: "busybox", Env: []corev1.EnvVar{{Name: "K", Value: "V"}}}},
			Volumes:         []corev1.Volume{{Name: "v"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: "PodScheduled"}}},
	}
	out, err := trimPod(full)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u-1", ResourceVersion: "42"},
		Spec:       corev1.PodSpec{SchedulingGates: gates("downloads.pixxel.space/a")},
	}))
	// Idempotent, and other objects (a tombstone) pass through.
	again, err := trimPod(out)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(out))
	g.Expect(trimPod("tombstone")).To(Equal("tombstone"))
}

func TestStateOf(t *testing.T) {
	ready := func(status metav1.ConditionStatus, observed int64) metav1.Condition {
		return metav1.Condition{Type: downloadsv1alpha1.ConditionReady, Status: status, ObservedGeneration: observed, Reason: "R"}
	}
	td := func(gen int64, phase downloadsv1alpha1.Phase, conds ...metav1.Condition) *downloadsv1alpha1.TaskDownload {
		return &downloadsv1alpha1.TaskDownload{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Status:     downloadsv1alpha1.TaskDownloadStatus{Phase: phase, Conditions: conds},
		}
	}
	stalled := metav1.Condition{Type: downloadsv1alpha1.ConditionStalled, Status: metav1.ConditionTrue}
	cases := []struct {
		name string
		td   *downloadsv1alpha1.TaskDownload
		want state
	}{
		{"missing", nil, stateMissing},
		{"new, no status", td(1, ""), statePending},
		{"pending", td(1, downloadsv1alpha1.PhasePending, ready(metav1.ConditionFalse, 1)), statePending},
		{"ready", td(2, downloadsv1alpha1.PhaseReady, ready(metav1.ConditionTrue, 2)), stateReady},
		{"ready for an older spec", td(3, downloadsv1alpha1.PhaseReady, ready(metav1.ConditionTrue, 2)), statePending},
		{"stalled", td(1, downloadsv1alpha1.PhaseFailed, ready(metav1.ConditionFalse, 1), stalled), stateStalled},
		{"failed", td(1, downloadsv1alpha1.PhaseFailed, ready(metav1.ConditionFalse, 1)), stateStalled},
		// A refresh refused for good while the published URL still works: pods keep starting.
		{"ready, its refresh stalled", td(1, downloadsv1alpha1.PhaseReady, ready(metav1.ConditionTrue, 1), stalled), stateReady},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(stateOf(tc.td)).To(Equal(tc.want))
		})
	}
}

// The patch tests the pod's UID and its whole gate list before removing, from the end, only the gates
// of the TaskDownloads being released, so that indexes stay valid while it applies.
func TestGatePatch(t *testing.T) {
	g := NewWithT(t)
	list := gates("example.com/first", "downloads.pixxel.space/a", "example.com/mid",
		"downloads.pixxel.space/b", "downloads.pixxel.space/c")
	data, removed, err := gatePatch(types.UID("u-1"), list, []string{"a", "c", "absent"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(removed).To(Equal([]string{"a", "c"}))
	var ops []map[string]any
	g.Expect(json.Unmarshal(data, &ops)).To(Succeed())
	g.Expect(ops).To(Equal([]map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": "u-1"},
		{"op": "test", "path": "/spec/schedulingGates", "value": []any{
			map[string]any{"name": "example.com/first"}, map[string]any{"name": "downloads.pixxel.space/a"},
			map[string]any{"name": "example.com/mid"}, map[string]any{"name": "downloads.pixxel.space/b"},
			map[string]any{"name": "downloads.pixxel.space/c"},
		}},
		{"op": "remove", "path": "/spec/schedulingGates/4"},
		{"op": "remove", "path": "/spec/schedulingGates/1"},
	}))

	data, removed, err = gatePatch("u-1", gates("example.com/foo"), []string{"a"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(data).To(BeNil(), "nothing of ours to remove: no patch at all")
	g.Expect(removed).To(BeEmpty())
}

// One event per reason and gate; a change of reason, a new gate or a recreated pod is said again, and
// forgetting frees the memory.
func TestReportedOncePerReason(t *testing.T) {
	g := NewWithT(t)
	var r reported
	pod := types.NamespacedName{Namespace: "ns", Name: "p"}
	g.Expect(r.first(pod, "u1", "a", ReasonTaskDownloadNotFound)).To(BeTrue())
	g.Expect(r.first(pod, "u1", "a", ReasonTaskDownloadNotFound)).To(BeFalse())
	g.Expect(r.first(pod, "u1", "b", ReasonTaskDownloadNotFound)).To(BeTrue())
	g.Expect(r.first(pod, "u1", "a", ReasonTaskDownloadNotReady)).To(BeTrue())
	g.Expect(r.first(pod, "u2", "a", ReasonTaskDownloadNotReady)).To(BeTrue(), "a recreated pod")
	g.Expect(r.first(pod, "u2", "b", ReasonTaskDownloadNotFound)).To(BeTrue())
	r.forgetGate(pod, "a")
	g.Expect(r.len()).To(Equal(1))
	r.forgetGate(pod, "b")
	g.Expect(r.len()).To(BeZero(), "a pod with nothing left to say is dropped")
	g.Expect(r.first(pod, "u2", "b", ReasonTaskDownloadNotFound)).To(BeTrue())
	r.forget(pod)
	g.Expect(r.len()).To(BeZero())
	r.forgetGate(pod, "a")
}
