package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// createObjects creates the demo namespace, the API-key Secret and the TaskDownloads of config/samples
// (or one TaskDownload for the real task named by PIXXEL_WORKFLOW_ID, PIXXEL_JOB_ID, PIXXEL_TASK_ID).
func createObjects(ctx context.Context, c client.Client, apiKey string,
	real bool) ([]*downloadsv1alpha1.TaskDownload, error) {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "pixxel-api-key"},
		StringData: map[string]string{"api-key": apiKey},
	}
	if err := c.Create(ctx, secret); err != nil {
		return nil, err
	}
	var tds []*downloadsv1alpha1.TaskDownload
	if real {
		ids := []string{os.Getenv("PIXXEL_WORKFLOW_ID"), os.Getenv("PIXXEL_JOB_ID"), os.Getenv("PIXXEL_TASK_ID")}
		if slices.Contains(ids, "") {
			return nil, errors.New("with PIXXEL_API_KEY, also set PIXXEL_WORKFLOW_ID, PIXXEL_JOB_ID and PIXXEL_TASK_ID")
		}
		tds = append(tds, &downloadsv1alpha1.TaskDownload{
			ObjectMeta: metav1.ObjectMeta{Name: "my-task"},
			Spec: downloadsv1alpha1.TaskDownloadSpec{
				WorkflowID: downloadsv1alpha1.ResourceID(ids[0]), JobID: downloadsv1alpha1.ResourceID(ids[1]),
				TaskID:          downloadsv1alpha1.ResourceID(ids[2]),
				APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel-api-key"},
				Target:          &downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret},
			},
		})
	} else {
		var err error
		if tds, err = sampleTaskDownloads(); err != nil {
			return nil, err
		}
	}
	for _, td := range tds {
		td.Namespace = namespace
		if err := c.Create(ctx, td); err != nil {
			return nil, fmt.Errorf("creating TaskDownload %s: %w", td.Name, err)
		}
		fmt.Printf("    created taskdownload/%s\n", td.Name)
	}
	return tds, nil
}

// sampleTaskDownloads reads the TaskDownloads from config/samples.
func sampleTaskDownloads() ([]*downloadsv1alpha1.TaskDownload, error) {
	files, err := filepath.Glob(filepath.Join(envtestutil.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*downloadsv1alpha1.TaskDownload
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var td downloadsv1alpha1.TaskDownload
			if err := dec.Decode(&td); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if td.Kind == "TaskDownload" {
				out = append(out, &td)
			}
		}
	}
	return out, nil
}
