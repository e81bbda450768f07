// Package load puts many numbered TaskDownloads on an API server from concurrent clients, for the
// benchmarks and the chaos tests.
package load

import (
	"fmt"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// APIKeySecret is the name of the Secret that the objects TaskDownload returns take their API key from.
const APIKeySecret = "pixxel"

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
