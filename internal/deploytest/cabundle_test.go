package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// TestChartReadmeProxyCAAddsRoots renders the chart README's egress proxy example: the CA it adds
// reaches the manager as --ca-file, a file of the mounted volume, and nothing is mounted where Go
// would take it for the system's only roots.
func TestChartReadmeProxyCAAddsRoots(t *testing.T) {
	g := NewWithT(t)
	readme, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "dist", "chart", "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	_, section, ok := strings.Cut(string(readme), "### Behind an egress proxy")
	g.Expect(ok).To(BeTrue())
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	g.Expect(m).NotTo(BeNil(), "the section has a yaml example")
	values := filepath.Join(t.TempDir(), "values.yaml")
	g.Expect(os.WriteFile(values, []byte(m[1]), 0o600)).To(Succeed())

	deploy := find(helmTemplate(t, "-f", values), "Deployment", nil)
	c := managerContainer(t, deploy)
	var caFile string
	for _, a := range stringSlice(c, "args") {
		if v, ok := strings.CutPrefix(a, "--ca-file="); ok {
			caFile = v
		}
	}
	g.Expect(caFile).NotTo(BeEmpty(), "the manager gets --ca-file")

	vols, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	files := map[string]bool{}
	mounts, _ := c["volumeMounts"].([]any)
	for _, mt := range mounts {
		mt := mt.(map[string]any)
		path := mt["mountPath"].(string)
		g.Expect(path).NotTo(HavePrefix("/etc/ssl"), "a mount that replaces the image's CA roots")
		g.Expect(c["env"]).NotTo(ContainElement(HaveKeyWithValue("name", MatchRegexp("^SSL_CERT_(FILE|DIR)$"))))
		for _, v := range vols {
			v := v.(map[string]any)
			if v["name"] != mt["name"] {
				continue
			}
			src, _ := v["configMap"].(map[string]any)
			g.Expect(src).To(HaveKeyWithValue("name", "proxy-ca"))
			items, _ := src["items"].([]any)
			for _, it := range items {
				files[path+"/"+it.(map[string]any)["path"].(string)] = true
			}
		}
	}
	g.Expect(files).To(HaveKey(caFile), "--ca-file names a file of the mounted ConfigMap")

	_, stderr, err := run(t, "helm", templateArgs("td", "--set", "manager.caBundle.configMap=a",
		"--set", "manager.caBundle.secret=b")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("manager.caBundle: set configMap or secret, not both"))
}
