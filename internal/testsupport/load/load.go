// Package load puts many numbered TaskDownloads on an API server from concurrent clients, for the
// benchmarks and the chaos tests.
package load

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// APIKeySecret is the name of the Secret that the objects TaskDownload returns take their API key from.
const APIKeySecret = "pixxel"

// Namespace creates namespace ns and, in it, the Secret APIKeySecret holding apiKey under the key
// TaskDownloads read by default.
func Namespace(ctx context.Context, c client.Client, ns, apiKey string) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	return c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: APIKeySecret},
		StringData: map[string]string{"api-key": apiKey},
	})
}

// Run calls f for every i in [0, n) from at most the given number of goroutines and returns the first
// error.
func Run(n, goroutines int, f func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(goroutines)
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}

// TaskDownload returns the i-th TaskDownload of a run: td-<i> in ns, for task task-<i> of job "job"
// in the given workflow, with the API key from APIKeySecret and a ConfigMap target of the same name.
func TaskDownload(ns, workflowID string, i int) *downloadsv1alpha1.TaskDownload {
	return &downloadsv1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("td-%d", i)},
		Spec: downloadsv1alpha1.TaskDownloadSpec{
			WorkflowID:      downloadsv1alpha1.ResourceID(workflowID),
			JobID:           "job",
			TaskID:          downloadsv1alpha1.ResourceID(fmt.Sprintf("task-%d", i)),
			APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: APIKeySecret},
			Target:          &downloadsv1alpha1.Target{},
		},
	}
}

// Create creates n numbered TaskDownloads in ns (workflow ID ns) from 16 concurrent clients.
func Create(ctx context.Context, c client.Client, ns string, n int) error {
	return Run(n, 16, func(i int) error { return c.Create(ctx, TaskDownload(ns, ns, i)) })
}

// Count lists the namespace's TaskDownloads and counts those that pass.
func Count(ctx context.Context, c client.Reader, ns string, pass func(*downloadsv1alpha1.TaskDownload) bool) (int, error) {
	var list downloadsv1alpha1.TaskDownloadList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		if pass(&list.Items[i]) {
			n++
		}
	}
	return n, nil
}

// IsReady reports whether the TaskDownload's Ready condition is True.
func IsReady(td *downloadsv1alpha1.TaskDownload) bool {
	return apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionReady)
}
