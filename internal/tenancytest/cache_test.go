package tenancytest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

const (
	floodObjects = 60
	floodSize    = 900 << 10
	// floodSettle is how long the manager's informers get to receive the flood.
	floodSettle = 3 * time.Second
)

// heapAfterGC is the live heap of this process (the manager runs in it), after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// floodHeapGrowth creates, in a namespace of their own, floodObjects ConfigMaps of floodSize bytes
// carrying the operator's managed-by label (anyone may set it on their own objects), and returns how
// much the heap grew once the manager's informers had them. It deletes the namespace's ConfigMaps.
func floodHeapGrowth(ctx context.Context) (int64, error) {
	ns := newNamespaceName()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	before := heapAfterGC()
	payload := strings.Repeat("x", floodSize)
	for i := range floodObjects {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("bloat-%d", i),
				Labels:      map[string]string{downloadsv1alpha1.LabelManagedBy: downloadsv1alpha1.ManagedByValue},
				Annotations: map[string]string{"bloat": strings.Repeat("a", 200<<10)}},
			Data: map[string]string{"payload": payload},
		}
		if err := k8s.Create(ctx, cm); err != nil {
			return 0, err
		}
	}
	time.Sleep(floodSettle)
	growth := int64(heapAfterGC()) - int64(before)
	return growth, k8s.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(ns))
}

func newNamespaceName() string { return fmt.Sprintf("flood-%d", nsCounter.Add(1)) }

// 60 ConfigMaps of 900 KiB labelled managed-by in an unrelated namespace grew the manager's heap by
// 56 MiB when targets were cached whole. Cached as trimmed metadata, the flood costs it under 5 MiB.
func TestLabelledFloodDoesNotGrowTheHeap(t *testing.T) {
	growth, err := floodHeapGrowth(context.Background())
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Logf("heap growth after %d labelled ConfigMaps of %d KiB: %.1f MiB", floodObjects, floodSize>>10, float64(growth)/(1<<20))
	NewWithT(t).Expect(growth).To(BeNumerically("<", 5<<20), "heap growth within 5 MiB")
}

// BenchmarkLabelledFlood reports the manager's heap growth per flood of floodObjects labelled
// ConfigMaps of floodSize bytes (go test ./internal/tenancytest -run '^$' -bench LabelledFlood).
func BenchmarkLabelledFlood(b *testing.B) {
	var total int64
	for b.Loop() {
		growth, err := floodHeapGrowth(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		total += growth
	}
	b.ReportMetric(float64(total)/float64(b.N)/(1<<20), "heap-MiB/flood")
}
