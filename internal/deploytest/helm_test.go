package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// TestHelmIsBuiltAsReleased: bin/helm carries the version and the default Kubernetes version of an
// official Helm build, so a plain `helm template dist/chart` passes the chart's kubeVersion.
func TestHelmIsBuiltAsReleased(t *testing.T) {
	g := NewWithT(t)
	makefile, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "Makefile"))
	g.Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile(`(?m)^HELM_VERSION \?= (\S+)$`).FindSubmatch(makefile)
	g.Expect(m).NotTo(BeNil())

	out, stderr, err := run(t, "helm", "version", "--template", "{{.Version}} {{.GitTreeState}}")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	g.Expect(string(out)).To(Equal(string(m[1])+" clean"), "run make helm to rebuild bin/helm")

	out, stderr, err = run(t, "helm", "template", "td", "dist/chart")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	g.Expect(kinds(decode(t, out))).To(HaveKey("Deployment"))
	out, stderr, err = run(t, "helm", "lint", "--strict", "dist/chart")
	g.Expect(err).NotTo(HaveOccurred(), "%s\n%s", out, stderr)
}
