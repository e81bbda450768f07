package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// showPublished prints each published ConfigMap or Secret, with the URL's signature hidden, and how a
// pod uses it.
func showPublished(ctx context.Context, c client.Client, tds []*downloadsv1alpha1.TaskDownload) error {
	step("What the operator published")
	for _, td := range tds {
		if err := showTarget(ctx, c, td); err != nil {
			return err
		}
	}
	fmt.Print(`
==> How a pod consumes it
  Mount the ConfigMap or Secret as a volume and let the operator's fetch helper download and unpack
  the package into a shared emptyDir (config/samples/taskdownload_job_fetch.yaml):

`)
	fmt.Print(indent(podSnippet(releaseImage(), "scene-42-download"), "    "))
	fmt.Print(`
  A mounted volume follows the operator's URL refreshes; envFrom fixes the values at pod start.
`)
	return nil
}

func redacted(u string) string {
	if u == "" {
		return ""
	}
	return signedurl.Redact(u) + "?…(signature hidden)"
}

// showTarget prints the ConfigMap or Secret td published to, or its status's URL when it has no target.
func showTarget(ctx context.Context, c client.Client, td *downloadsv1alpha1.TaskDownload) error {
	t := td.Spec.Target
	if t == nil {
		cur := &downloadsv1alpha1.TaskDownload{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(td), cur); err != nil {
			return err
		}
		fmt.Printf("\n  taskdownload/%s status.signedURL: %s\n", td.Name, redacted(cur.Status.SignedURL))
		return nil
	}
	name := t.Name
	if name == "" {
		name = td.Name
	}
	data, err := targetData(ctx, c, t.Kind, client.ObjectKey{Namespace: namespace, Name: name})
	if err != nil {
		return err
	}
	kind := strings.ToLower(string(t.Kind))
	fmt.Printf("\n  %s/%s (owned by taskdownload/%s):\n", kind, name, td.Name)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := data[k]
		if k == downloadsv1alpha1.KeySignedURL {
			v = redacted(v)
		}
		fmt.Printf("    %-12s %s\n", k+":", v)
	}
	return nil
}

// targetData reads the keys of the target of kind at key.
func targetData(ctx context.Context, c client.Client, kind downloadsv1alpha1.TargetKind,
	key client.ObjectKey) (map[string]string, error) {
	if kind == downloadsv1alpha1.TargetSecret {
		s := &corev1.Secret{}
		if err := c.Get(ctx, key, s); err != nil {
			return nil, err
		}
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return data, nil
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, key, cm); err != nil {
		return nil, err
	}
	return cm.Data, nil
}
