package schedulinggate

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// RemoveGates exposes removeGates to the envtest suite, which must live in schedulinggate_test because
// it wires the operator through internal/manager.
func (r *Reconciler) RemoveGates(ctx context.Context, pod *corev1.Pod, release []string) ([]string, error) {
	return r.removeGates(ctx, pod, release)
}
