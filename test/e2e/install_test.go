//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// webhookPort is the manager's webhook server port (the chart's injection.port), on the node's loopback.
const webhookPort = 9443

// operatorNamespace is where both install.yaml and the documented helm install put the operator.
const operatorNamespace = "taskdownload-operator-system"

// operatorSelector selects the manager's Deployment and pods in either install.
var operatorSelector = client.MatchingLabels{
	"app.kubernetes.io/name": "taskdownload-operator",
	"control-plane":          "controller-manager",
}

// install is one way the operator is installed: from install.yaml, or from the packaged chart with
// some values.
type install struct {
	name       string
	helmValues []string // --set arguments; nil means install.yaml
	image      string
	// available bounds the wait for the Deployment to be Available; 90 s when zero.
	available time.Duration
}

func (i install) helm() bool { return i.helmValues != nil }

var (
	kubectlInstall = install{name: "install.yaml", image: ""}
	current        *install
	overlayShown   bool
)

// overlay writes the e2e overlay into dir: what this cluster needs and nothing else. base.yaml is the
// release's install.yaml, or helm's output when the overlay is helm's post-renderer.
func overlay(t *testing.T, dir, image string) {
	t.Helper()
	repo, tag, _ := strings.Cut(image, ":")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, tag = image[:i], image[i+1:]
	}
	kustomization := fmt.Sprintf(`# The e2e overlay: the release as published, changed only where this cluster needs it.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- base.yaml
images:
# The image make e2e imported into containerd; there is no registry to pull from.
- name: ghcr.io/pixxel-space/taskdownload-operator
  newName: %s
  newTag: %s
patches:
- path: manager.yaml
  target:
    kind: Deployment
    labelSelector: app.kubernetes.io/name=taskdownload-operator
# The API server calls the injecting webhook (when installed) on loopback: a Service's endpoints cannot
# be loopback addresses, and nothing routes its ClusterIP.
- patch: |-
    - {op: replace, path: /webhooks/0/clientConfig, value: {url: "https://localhost:%d/mutate-v1-pod"}}
  target:
    kind: MutatingWebhookConfiguration
`, repo, tag, webhookPort)
	ops := []string{
		"# Pods reach the fake platform and the API server on loopback only: no pod network here.",
		"- {op: add, path: /spec/template/spec/hostNetwork, value: true}",
		"# Host ports are the node's: the old pod must be gone before the new one can bind them.",
		"- {op: add, path: /spec/strategy, value: {type: Recreate}}",
		"- {op: add, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}",
		fmt.Sprintf(
			"- {op: add, path: /spec/template/spec/containers/0/args/-, value: \"--api-url=%s\"}",
			platform.URL,
		),
		"# The injecting webhook's certificate names localhost too, where the API server calls it.",
		"- {op: add, path: /spec/template/spec/containers/0/args/-, value: \"--injection-cert-extra-dns-names=localhost\"}",
	}
	if env.apiHost != "" {
		ops = append(
			ops,
			"# In-cluster clients must not dial the kubernetes Service's ClusterIP: nothing routes it.",
			fmt.Sprintf(
				"- {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_HOST, value: %q}}",
				env.apiHost,
			),
			fmt.Sprintf(
				"- {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_PORT, value: %q}}",
				env.apiPort,
			),
		)
	}
	patch := strings.Join(ops, "\n") + "\n"
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), kustomization)
	writeFile(t, filepath.Join(dir, "manager.yaml"), patch)
	if !overlayShown {
		overlayShown = true
		t.Logf("the e2e overlay (kustomization.yaml, then manager.yaml):\n%s---\n%s", kustomization, patch)
	}
}

// renderInstall returns install.yaml with the e2e overlay applied, as a file.
func renderInstall(t *testing.T, image string) string {
	t.Helper()
	dir := tempDir(t)
	base, err := os.ReadFile(filepath.Join(env.releaseDir, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "base.yaml"), string(base))
	overlay(t, dir, image)
	out := filepath.Join(dir, "install.yaml")
	writeFile(t, out, run(t, env.kustomize, "build", dir))
	return out
}

// chartPackage is the chart make release packaged.
func chartPackage(t *testing.T) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(env.releaseDir, "taskdownload-operator-*.tgz"))
	if len(matches) != 1 {
		t.Fatalf("want one chart package in %s, found %v", env.releaseDir, matches)
	}
	return matches[0]
}

// postRenderer writes an executable that applies the e2e overlay to helm's output.
func postRenderer(t *testing.T, image string) string {
	t.Helper()
	dir := tempDir(t)
	overlay(t, dir, image)
	script := filepath.Join(dir, "post-render")
	writeFile(
		t,
		script,
		fmt.Sprintf("#!/bin/sh\nset -e\ncat > %q/base.yaml\nexec %q build %q\n", dir, env.kustomize, dir),
	)
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// useInstall makes want the operator's installation, replacing another one first, and waits until
// its Deployment is Available.
func useInstall(t *testing.T, want install) {
	t.Helper()
	if want.image == "" {
		want.image = env.image
	}
	if current != nil && current.name == want.name && current.image == want.image {
		return
	}
	if current != nil && current.helm() != want.helm() {
		uninstall(t)
	}
	applyInstall(t, want)
}

func applyInstall(t *testing.T, want install) {
	t.Helper()
	start := time.Now()
	if want.helm() {
		sets := make([]string, 0, 2*len(want.helmValues))
		for _, v := range want.helmValues {
			sets = append(sets, "--set", v)
		}
		run(t, env.helm, append([]string{"upgrade", "--install", "taskdownload-operator", chartPackage(t),
			"--namespace", operatorNamespace, "--create-namespace", "--reset-values",
			"--post-renderer", postRenderer(t, want.image)}, sets...)...)
	} else {
		run(t, env.kubectl, "apply", "--server-side", "--force-conflicts", "-f", renderInstall(t, want.image))
	}
	current = &want
	if want.available == 0 {
		want.available = 90 * time.Second
	}
	waitOperatorAvailable(t, want.image, want.available)
	t.Logf("operator (%s, %s) Available %.1fs after apply", want.name, want.image, time.Since(start).Seconds())
}

// uninstall removes the current installation the way the README says.
func uninstall(t *testing.T) {
	t.Helper()
	if current == nil {
		return
	}
	if current.helm() {
		run(t, env.helm, "uninstall", "taskdownload-operator", "--namespace", operatorNamespace, "--wait")
	} else {
		run(t, env.kubectl, "delete", "--ignore-not-found", "--wait", "-f", renderInstall(t, current.image))
	}
	current = nil
	waitGone(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}, 2*time.Minute)
}

// waitOperatorAvailable waits for the manager Deployment to run image, with every replica updated
// and Available.
func waitOperatorAvailable(t *testing.T, image string, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, "the manager Deployment Available", func(ctx context.Context) (bool, string) {
		var list appsv1.DeploymentList
		err := k8s.List(ctx, &list, client.InNamespace(operatorNamespace), operatorSelector)
		if err != nil || len(list.Items) != 1 {
			return false, fmt.Sprintf("deployments: %d, %v", len(list.Items), err)
		}
		dep := list.Items[0]
		available := slices.ContainsFunc(dep.Status.Conditions, func(c appsv1.DeploymentCondition) bool {
			return c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue
		})
		want, running := ptrOr(dep.Spec.Replicas, 1), dep.Spec.Template.Spec.Containers[0].Image
		st := dep.Status
		done := available && st.ObservedGeneration == dep.Generation && st.UpdatedReplicas == want &&
			st.Replicas == want && st.AvailableReplicas == want && running == image
		return done, fmt.Sprintf("available=%v updated=%d/%d ready=%d total=%d image=%s",
			available, st.UpdatedReplicas, want, st.ReadyReplicas, st.Replicas, running)
	})
}

// managerPod returns the one running manager pod.
func managerPod(t *testing.T) *corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := k8s.List(context.Background(), &pods, client.InNamespace(operatorNamespace), operatorSelector); err != nil {
		t.Fatal(err)
	}
	var running []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			running = append(running, p)
		}
	}
	if len(running) != 1 {
		t.Fatalf("want one running manager pod, found %d of %d", len(running), len(pods.Items))
	}
	return &running[0]
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// waitGone waits until obj no longer exists.
func waitGone(t *testing.T, obj client.Object, timeout time.Duration) {
	t.Helper()
	what := fmt.Sprintf("%T %s gone", obj, client.ObjectKeyFromObject(obj))
	poll(t, timeout, what, func(ctx context.Context) (bool, string) {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// tempDir is a directory removed when the test ends, whose name, unlike t.TempDir's, never holds a
// comma (kubectl -f splits file names on commas).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// run runs a command and returns its standard output; it fails the test with its output otherwise.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
