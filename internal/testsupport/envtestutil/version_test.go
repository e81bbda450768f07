package envtestutil

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// K8sVersion is the Makefile's ENVTEST_K8S_VERSION, which hack/envtest-binaries.sh receives, and the
// version the README names.
func TestK8sVersionAgreesWithTheMakefileAndTheREADME(t *testing.T) {
	for file, pattern := range map[string]string{
		"Makefile":                 `(?m)^ENVTEST_K8S_VERSION \?= (\S+)$`,
		"hack/envtest-binaries.sh": `ENVTEST_K8S_VERSION:-([0-9.]+)\}`,
		"README.md":                `Every test runs on kube-apiserver ([0-9.]+)`,
	} {
		data, err := os.ReadFile(filepath.Join(RepoRoot(), file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(pattern).FindSubmatch(data)
		if m == nil || string(m[1]) != K8sVersion {
			t.Errorf("%s: Kubernetes version %q; envtestutil.K8sVersion is %s", file, m, K8sVersion)
		}
	}
}
