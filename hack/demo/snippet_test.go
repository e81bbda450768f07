package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// imageEntrypoint reads the image's ENTRYPOINT from the Dockerfile (hack/image builds the same).
func imageEntrypoint(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Dockerfile has no ENTRYPOINT [...]")
	}
	var ep []string
	if err := json.Unmarshal(m[1], &ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestPodSnippetRuns runs the init container the demo prints as a kubelet would: the command is the
// container's, or else the image's entrypoint; the volumes are directories; the ConfigMap holds a
// signed URL of a package. The helper it runs must extract the package.
func TestPodSnippetRuns(t *testing.T) {
	g := NewWithT(t)
	var spec corev1.PodSpec
	g.Expect(yaml.UnmarshalStrict([]byte(podSnippet(releaseImage(), "scene-42-download")), &spec)).To(Succeed())
	g.Expect(spec.InitContainers).To(HaveLen(1))
	c := spec.InitContainers[0]
	g.Expect(c.Image).To(HavePrefix(operatorRepository + ":v"))

	argv := c.Command
	if len(argv) == 0 {
		argv = imageEntrypoint(t)
	}
	g.Expect(argv).To(Equal([]string{"/fetch"}), "the init container runs %v, not the fetch helper", argv)

	bin := filepath.Join(t.TempDir(), "fetch")
	fetchMain := filepath.Join(envtestutil.RepoRoot(), "cmd", "fetch")
	out, err := exec.Command("go", "build", "-o", bin, fetchMain).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))

	pkg := tarGz(t, "scene/band1.tif", "pixels")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(pkg)
	}))
	defer srv.Close()

	// Each volume is a directory; the ConfigMap's is filled as the kubelet would.
	dirs := map[string]string{}
	for _, v := range spec.Volumes {
		dirs[v.Name] = filepath.Join(t.TempDir(), v.Name)
		g.Expect(os.MkdirAll(dirs[v.Name], 0o755)).To(Succeed())
		if v.ConfigMap != nil {
			g.Expect(v.ConfigMap.Name).To(Equal("scene-42-download"))
			g.Expect(os.WriteFile(filepath.Join(dirs[v.Name], "SIGNED_URL"),
				[]byte(srv.URL+"/scene.tar.gz?X-Amz-Signature=abc"), 0o600)).To(Succeed())
		}
	}
	mounts := slices.Clone(c.VolumeMounts)
	slices.SortFunc(mounts, func(a, b corev1.VolumeMount) int { return len(b.MountPath) - len(a.MountPath) })
	hostPath := func(arg string) string {
		for _, m := range mounts {
			if i := strings.Index(arg, m.MountPath); i >= 0 {
				return arg[:i] + dirs[m.Name] + arg[i+len(m.MountPath):]
			}
		}
		return arg
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = hostPath(a)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err = exec.CommandContext(ctx, bin, args...).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	got, err := os.ReadFile(filepath.Join(dirs["data"], "scene", "band1.tif"))
	g.Expect(err).NotTo(HaveOccurred(), "the package is extracted into the data volume:\n%s", out)
	g.Expect(string(got)).To(Equal("pixels"))
}

func tarGz(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(content))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
