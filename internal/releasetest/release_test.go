package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/pixxel-space/taskdownload-operator/internal/imagetest"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/manifests"
)

const defaultRepo = "ghcr.io/pixxel-space/taskdownload-operator"

// sampleJobs run the fetch helper from the operator's image.
var sampleJobs = []string{"config/samples/taskdownload_job_fetch.yaml", "config/samples/taskdownload_job_gate.yaml"}

type chartMeta struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

type chartValues struct {
	Manager struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	} `json:"manager"`
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestVersionIsOneSource: VERSION names the release; the chart and the kustomize manifests must
// default to that release's image, or a user installing from the repository runs another version.
func TestVersionIsOneSource(t *testing.T) {
	checkOneVersion(t, envtestutil.RepoRoot())
}

func checkOneVersion(t *testing.T, root string) string {
	t.Helper()
	g := NewWithT(t)
	read := func(rel string) []byte {
		data, err := os.ReadFile(filepath.Join(root, rel))
		g.Expect(err).NotTo(HaveOccurred())
		return data
	}
	version := strings.TrimSpace(string(read("VERSION")))
	g.Expect(version).To(MatchRegexp(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`))

	var chart chartMeta
	g.Expect(yaml.Unmarshal(read("dist/chart/Chart.yaml"), &chart)).To(Succeed())
	g.Expect(chart.AppVersion).To(Equal(version), "dist/chart/Chart.yaml appVersion")
	g.Expect(chart.Version).To(Equal(strings.TrimPrefix(version, "v")), "dist/chart/Chart.yaml version")

	var values chartValues
	g.Expect(yaml.Unmarshal(readRepoFile(t, "dist/chart/values.yaml"), &values)).To(Succeed())
	g.Expect(values.Manager.Image.Repository).To(Equal(defaultRepo))
	g.Expect(values.Manager.Image.Tag).To(BeEmpty(), "the tag follows appVersion unless a user sets it")

	g.Expect(deploymentImage(t, decode(t, read("config/manager/manager.yaml")))).To(
		Equal(defaultRepo+":"+version), "config/manager/manager.yaml")
	for _, sample := range sampleJobs {
		g.Expect(regexp.MustCompile(`(?m)^\s+image: (\S+)$`).FindAllStringSubmatch(string(read(sample)), -1)).
			To(ContainElement(ContainElement(defaultRepo+":"+version)), "%s runs fetch from the release's image", sample)
	}
	for _, readme := range []string{"README.md", "dist/chart/README.md"} {
		g.Expect(string(read(readme))).To(ContainSubstring("taskdownload-operator-"+strings.TrimPrefix(version, "v")+".tgz"),
			"%s installs this version's chart", readme)
	}
	return version
}

// make set-version moves every place that names the version at once, and a bad version changes
// nothing. It runs on a copy of the files it edits.
func TestSetVersion(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	files := append([]string{"VERSION", "dist/chart/Chart.yaml", "config/manager/manager.yaml", "README.md",
		"dist/chart/README.md"}, sampleJobs...)
	for _, rel := range files {
		g.Expect(os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755)).To(Succeed())
		g.Expect(os.WriteFile(filepath.Join(root, rel), readRepoFile(t, rel), 0o644)).To(Succeed())
	}
	script := filepath.Join(envtestutil.RepoRoot(), "hack", "set-version.sh")
	run := func(version string) (string, error) {
		out, err := exec.Command(script, version, root).CombinedOutput()
		return string(out), err
	}

	out, err := run("v9.8.7-rc.1")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(checkOneVersion(t, root)).To(Equal("v9.8.7-rc.1"))
	readme := string(must(os.ReadFile(filepath.Join(root, "README.md"))))
	g.Expect(readme).To(ContainSubstring("make release VERSION=v9.8.7-rc.1`"))
	g.Expect(readme).To(ContainSubstring("make set-version VERSION=v0.2.0`"), "the example is not a place that names the version")

	read := func() map[string]string {
		contents := map[string]string{}
		for _, rel := range files {
			contents[rel] = string(must(os.ReadFile(filepath.Join(root, rel))))
		}
		return contents
	}
	before := read()
	out, err = run("9.9")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("VERSION=9.9 is not a semantic version"))
	g.Expect(read()).To(Equal(before), "after a rejected version")

	// A place that no longer names the version as expected (edited by hand) stops the whole change.
	manifest := filepath.Join(root, "config/manager/manager.yaml")
	g.Expect(os.WriteFile(manifest, []byte(strings.ReplaceAll(string(must(os.ReadFile(manifest))),
		defaultRepo+":v9.8.7-rc.1", defaultRepo+":latest")), 0o644)).To(Succeed())
	before = read()
	out, err = run("v9.9.0")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("config/manager/manager.yaml does not hold"))
	g.Expect(read()).To(Equal(before), "when one place does not match")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func managerImage(g Gomega, dep *appsv1.Deployment) string {
	images := map[string]string{}
	for _, c := range dep.Spec.Template.Spec.Containers {
		images[c.Name] = c.Image
	}
	g.Expect(images).To(HaveKey("manager"), "the Deployment's containers")
	return images["manager"]
}

// makeCmd runs a make target in the repository with only the given variables set: the outer make's
// command-line variables (MAKEFLAGS) must not leak into it.
func makeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = envtestutil.RepoRoot()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMakeRelease(t *testing.T) {
	g := NewWithT(t)
	dist := t.TempDir()
	out, err := makeCmd(t, "release", "VERSION=v0.1.0", "DIST="+dist)
	g.Expect(err).NotTo(HaveOccurred(), out)

	img := defaultRepo + ":v0.1.0"
	checkInstallYAML(t, filepath.Join(dist, "install.yaml"), img)
	checkChart(t, filepath.Join(dist, "taskdownload-operator-0.1.0.tgz"), "0.1.0", "v0.1.0", defaultRepo)

	checkChecksums(t, dist, "install.yaml", "taskdownload-operator-0.1.0.tgz", "sbom.cdx.json", "image/index.json")
	checkSBOM(t, filepath.Join(dist, "sbom.cdx.json"))

	l, err := imagetest.Open(filepath.Join(dist, "image"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(l.RefName).To(Equal("v0.1.0"))
	g.Expect(l.Images).To(HaveLen(2))
	for _, i := range l.Images {
		g.Expect(i.Config.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.version", "v0.1.0"))
	}
}

// checkChecksums: checksums.txt lists every artifact, the image layout's files included, and
// sha256sum -c accepts it.
func checkChecksums(t *testing.T, dist string, want ...string) {
	t.Helper()
	g := NewWithT(t)
	data, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	g.Expect(err).NotTo(HaveOccurred())
	var files []string
	for line := range strings.Lines(string(data)) {
		_, file, ok := strings.Cut(strings.TrimSpace(line), "  ")
		g.Expect(ok).To(BeTrue(), "line %q", line)
		files = append(files, file)
	}
	g.Expect(files).To(ContainElements(want))
	g.Expect(files).To(ContainElement(HavePrefix("image/blobs/sha256/")))
	cmd := exec.Command("sha256sum", "--check", "--strict", "checksums.txt")
	cmd.Dir = dist
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
}

// checkSBOM: a CycloneDX document whose components are the modules go.mod requires, at their versions.
func checkSBOM(t *testing.T, file string) {
	t.Helper()
	g := NewWithT(t)
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct {
				Name string `json:"name"`
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		} `json:"components"`
	}
	data, err := os.ReadFile(file)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Unmarshal(data, &bom)).To(Succeed())
	g.Expect(bom.BOMFormat).To(Equal("CycloneDX"))
	g.Expect(bom.SpecVersion).To(Equal("1.6"))
	g.Expect(bom.Metadata.Component.Name).To(Equal("github.com/pixxel-space/taskdownload-operator"))
	have := map[string]string{}
	for _, c := range bom.Components {
		have[c.Name] = c.Version
		g.Expect(c.PURL).To(HavePrefix("pkg:"), "component %s", c.Name)
	}
	// Every module linked into the shipped binaries is listed at its version.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}",
		"./cmd", "./cmd/fetch")
	cmd.Dir = envtestutil.RepoRoot()
	out, err := cmd.Output()
	g.Expect(err).NotTo(HaveOccurred())
	linked := 0
	for line := range strings.Lines(string(out)) {
		if path, version, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			linked++
			g.Expect(have).To(HaveKeyWithValue(path, version), "the SBOM lists %s %s, linked into the binaries", path, version)
		}
	}
	g.Expect(linked).To(BeNumerically(">", 10))
}

// A release for another registry points every rendering there; one platform keeps the test short.
func TestMakeReleaseToAnotherRegistry(t *testing.T) {
	g := NewWithT(t)
	dist := t.TempDir()
	out, err := makeCmd(t, "release", "VERSION=v0.2.0-rc.1", "REGISTRY=registry.example.com/team",
		"PLATFORMS=linux/amd64", "DIST="+dist)
	g.Expect(err).NotTo(HaveOccurred(), out)

	repo := "registry.example.com/team/taskdownload-operator"
	checkInstallYAML(t, filepath.Join(dist, "install.yaml"), repo+":v0.2.0-rc.1")
	checkChart(t, filepath.Join(dist, "taskdownload-operator-0.2.0-rc.1.tgz"), "0.2.0-rc.1", "v0.2.0-rc.1", repo)
}

func TestMakeReleaseRejectsABadVersion(t *testing.T) {
	g := NewWithT(t)
	dist := t.TempDir()
	out, err := makeCmd(t, "release", "VERSION=0.1", "DIST="+dist)
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("VERSION=0.1 is not a semantic version"))
	entries, _ := os.ReadDir(dist)
	g.Expect(entries).To(BeEmpty())
}

// TestRenderInstallerLeavesConfigAlone: make build-installer and make deploy set the image through
// hack/image/render-installer.sh, which must not edit committed files as kubebuilder's recipe did.
func TestRenderInstallerLeavesConfigAlone(t *testing.T) {
	g := NewWithT(t)
	root := envtestutil.RepoRoot()
	kustomize := filepath.Join(root, "bin", "kustomize")
	if _, err := os.Stat(kustomize); err != nil {
		t.Fatalf("kustomize not found at %s: run `make kustomize` (make test does)", kustomize)
	}
	before := readRepoFile(t, "config/manager/kustomization.yaml")
	manifest := readRepoFile(t, "config/manager/manager.yaml")

	img := "registry.example.com/team/taskdownload-operator@sha256:" + strings.Repeat("ab", 32)
	cmd := exec.Command(filepath.Join(root, "hack", "image", "render-installer.sh"), kustomize, img)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	g.Expect(err).NotTo(HaveOccurred(), stderr.String())
	file := filepath.Join(t.TempDir(), "install.yaml")
	g.Expect(os.WriteFile(file, out, 0o600)).To(Succeed())
	checkInstallYAML(t, file, img)

	g.Expect(readRepoFile(t, "config/manager/kustomization.yaml")).To(Equal(before))
	g.Expect(readRepoFile(t, "config/manager/manager.yaml")).To(Equal(manifest))
}

// checkInstallYAML: every object a cluster needs, and the manager running image.
func checkInstallYAML(t *testing.T, file, img string) {
	t.Helper()
	g := NewWithT(t)
	data, err := os.ReadFile(file)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).NotTo(ContainSubstring("controller:latest"))
	objs := decode(t, data)
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()] = true
	}
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole",
		"ClusterRoleBinding", "Role", "RoleBinding", "Deployment"} {
		g.Expect(kinds).To(HaveKey(k), "%s has no %s", filepath.Base(file), k)
	}
	g.Expect(deploymentImage(t, objs)).To(Equal(img))
}

// checkChart opens the packaged chart, then renders it with its defaults.
func checkChart(t *testing.T, tgz, version, appVersion, repo string) {
	t.Helper()
	g := NewWithT(t)
	files := untar(t, tgz)
	var chart chartMeta
	g.Expect(yaml.Unmarshal(files["taskdownload-operator/Chart.yaml"], &chart)).To(Succeed())
	g.Expect(chart).To(Equal(chartMeta{Name: "taskdownload-operator", Version: version, AppVersion: appVersion}))
	var values chartValues
	g.Expect(yaml.Unmarshal(files["taskdownload-operator/values.yaml"], &values)).To(Succeed())
	g.Expect(values.Manager.Image.Repository).To(Equal(repo))

	helm := filepath.Join(envtestutil.RepoRoot(), "bin", "helm")
	out, err := exec.Command(helm, "template", "taskdownload-operator", tgz, "--namespace", "ops", "--kube-version", "1.37.2").Output()
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		t.Fatalf("helm template %s: %v\n%s", tgz, err, exitErr.Stderr)
	}
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).NotTo(ContainSubstring("controller:latest"))
	g.Expect(deploymentImage(t, decode(t, out))).To(Equal(repo + ":" + appVersion))
}

func deploymentImage(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	g := NewWithT(t)
	var images []string
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep)).To(Succeed())
		images = append(images, managerImage(g, &dep))
	}
	g.Expect(images).To(HaveLen(1), "one Deployment")
	return images[0]
}

func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func untar(t *testing.T, file string) map[string][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if files[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}
