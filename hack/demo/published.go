package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
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

// showTarget prints the object td published to, or its status's URL when it has no target.
func showTarget(ctx context.Context, c client.Client, td *downloadsv1alpha1.TaskDownload) error {
	ref, ok := target.Of(td)
	if !ok {
		cur := &downloadsv1alpha1.TaskDownload{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(td), cur); err != nil {
			return err
		}
		fmt.Printf("\n  taskdownload/%s status.signedURL: %s\n", td.Name, redacted(cur.Status.SignedURL))
		return nil
	}
	obj := ref.Kind.New()
	if err := c.Get(ctx, ref.NamespacedName, obj); err != nil {
		return err
	}
	data := ref.Kind.Data(obj)
	kind := strings.ToLower(string(ref.Kind.TargetKind()))
	fmt.Printf("\n  %s/%s (owned by taskdownload/%s):\n", kind, ref.Name, td.Name)
	for _, k := range slices.Sorted(maps.Keys(data)) {
		v := data[k]
		if k == downloadsv1alpha1.KeySignedURL {
			v = redacted(v)
		}
		fmt.Printf("    %-12s %s\n", k+":", v)
	}
	return nil
}
