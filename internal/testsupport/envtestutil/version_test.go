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

// The oldest version make test-oldest runs on is the one the chart's kubeVersion and the README claim.
func TestOldestVersionIsTheClaimedOne(t *testing.T) {
	read := func(file string) []byte {
		data, err := os.ReadFile(filepath.Join(RepoRoot(), file))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	oldest := regexp.MustCompile(`(?m)^OLDEST_K8S_VERSION \?= (1\.(\d+)\.\d+)$`).FindSubmatch(read("Makefile"))
	if oldest == nil {
		t.Fatal("Makefile: no OLDEST_K8S_VERSION")
	}
	claimed := regexp.MustCompile(`(?m)^kubeVersion: ">=1\.(\d+)\.0-0"$`).FindSubmatch(read("dist/chart/Chart.yaml"))
	if claimed == nil || string(claimed[1]) != string(oldest[2]) {
		t.Errorf("dist/chart/Chart.yaml kubeVersion claims 1.%s; make test-oldest runs %s", claimed, oldest[1])
	}
	row := regexp.MustCompile("(?m)^\\| ([0-9.]+), the oldest supported \\| `make test-oldest`").FindSubmatch(read("README.md"))
	if row == nil || string(row[1]) != string(oldest[1]) {
		t.Errorf("README.md names %q as the oldest tested; make test-oldest runs %s", row, oldest[1])
	}
}
