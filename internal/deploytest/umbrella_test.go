package deploytest

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// umbrellaChart writes a parent chart that depends on this one as a platform team's umbrella chart
// does, with a condition on taskdownload-operator.enabled and the given values.yaml.
func umbrellaChart(t *testing.T, values string) string {
	t.Helper()
	g := NewWithT(t)
	dir := filepath.Join(t.TempDir(), "platform")
	g.Expect(os.CopyFS(filepath.Join(dir, "charts", "taskdownload-operator"),
		os.DirFS(filepath.Join(envtestutil.RepoRoot(), "dist", "chart")))).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte(`apiVersion: v2
name: platform
version: 1.0.0
dependencies:
  - name: taskdownload-operator
    version: ">=0.0.0-0"
    condition: taskdownload-operator.enabled
`), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "values.yaml"), []byte(values), 0o600)).To(Succeed())
	return dir
}

// TestChartAsConditionalDependency: an umbrella chart turns this chart on and off with the usual
// `condition: <name>.enabled`, and the globals it shares (a mirror registry, pull secrets) are used,
// while globals meant for its other subcharts pass.
func TestChartAsConditionalDependency(t *testing.T) {
	g := NewWithT(t)
	const globals = `
global:
  imageRegistry: mirror.internal:5000
  imagePullSecrets:
    - name: mirror-pull
  storageClass: fast # a sibling chart's
`
	on := umbrellaChart(t, globals+"taskdownload-operator:\n  enabled: true\n")
	objs := render(t, "helm", "template", "platform", on, "--namespace", releaseNamespace,
		"--kube-version", envtestutil.K8sVersion)
	deploy := find(objs, "Deployment", nil)
	g.Expect(deploy).NotTo(BeNil(), "enabled: true installs the operator")
	g.Expect(managerContainer(t, deploy)["image"]).To(
		MatchRegexp(`^mirror\.internal:5000/pixxel-space/taskdownload-operator:v\d+\.\d+\.\d+`))
	secrets, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "imagePullSecrets")
	g.Expect(secrets).To(ConsistOf(map[string]any{"name": "mirror-pull"}))

	off := umbrellaChart(t, globals+"taskdownload-operator:\n  enabled: false\n")
	out, stderr, err := run(t, "helm", "template", "platform", off, "--kube-version", envtestutil.K8sVersion)
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	g.Expect(kinds(decode(t, out))).To(BeEmpty(), "enabled: false installs nothing")
}

// TestChartImageRegistry: global.imageRegistry replaces only the registry part of the repository,
// keeps a digest as given, and is checked like any other value.
func TestChartImageRegistry(t *testing.T) {
	g := NewWithT(t)
	image := func(args ...string) any {
		return managerContainer(t, find(helmTemplate(t, args...), "Deployment", nil))["image"]
	}
	g.Expect(image("--set", "global.imageRegistry=registry.corp/mirror", "--set", "manager.image.tag=v9.9.9")).
		To(Equal("registry.corp/mirror/pixxel-space/taskdownload-operator:v9.9.9"))
	digest := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	g.Expect(image("--set", "global.imageRegistry=localhost:5000",
		"--set", "manager.image.repository=ghcr.io/pixxel-space/taskdownload-operator@"+digest)).
		To(Equal("localhost:5000/pixxel-space/taskdownload-operator@" + digest))
	_, stderr, err := run(t, "helm", templateArgs("td", "--set", "global.imageRegistry=a b")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("imageRegistry"))
}
