package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// repoRoot is the operator's repository, two levels up from hack/image.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// fakeRelease writes what make release writes for v9.8.7 into a new directory, with fake binaries in
// the image, and returns it with the image index's digest.
func fakeRelease(t *testing.T) (string, v1.Hash) {
	t.Helper()
	const version = "v9.8.7"
	dist := t.TempDir()
	idx, err := Assemble(testPlatforms, fakeBinaries(t), Metadata{Version: version, Revision: "0123abc",
		Source: "https://example.com/src", Created: time.Unix(1_700_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeLayout(filepath.Join(dist, "image"), idx, version); err != nil {
		t.Fatal(err)
	}
	helm := filepath.Join(repoRoot(t), "bin", "helm")
	out, err := exec.Command(helm, "package", filepath.Join(repoRoot(t), "dist", "chart"), "--version",
		strings.TrimPrefix(version, "v"), "--app-version", version, "--destination", dist).CombinedOutput()
	if err != nil {
		t.Fatalf("helm package (run make helm): %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dist, "install.yaml"), []byte("kind: List\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var sums strings.Builder
	err = filepath.WalkDir(dist, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		sum, err := sha256File(path)
		rel, _ := filepath.Rel(dist, path)
		fmt.Fprintf(&sums, "%s  %s\n", sum, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(sums.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return dist, d
}

// TestReleasePush publishes a release to a registry served by this process: the image and the chart
// (an OCI artifact helm can read back), both returned by digest.
func TestReleasePush(t *testing.T) {
	dist, want := fakeRelease(t)
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	helm := filepath.Join(repoRoot(t), "bin", "helm")
	o := releasePushOptions{Dist: dist, Image: host + "/pixxel/taskdownload-operator:v9.8.7",
		ChartRepo: "oci://" + host + "/pixxel/charts", Helm: helm}

	p, err := releasePush(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Image != host+"/pixxel/taskdownload-operator@"+want.String() {
		t.Errorf("image pushed as %s, want the index digest %s", p.Image, want)
	}
	if _, err := remote.Index(mustRef(t, p.Image)); err != nil {
		t.Errorf("the registry has no index %s: %v", p.Image, err)
	}

	if !strings.HasPrefix(p.Chart, host+"/pixxel/charts/taskdownload-operator@sha256:") {
		t.Fatalf("chart pushed as %q", p.Chart)
	}
	img, err := remote.Image(mustRef(t, p.Chart))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := os.ReadFile(filepath.Join(dist, "taskdownload-operator-9.8.7.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tgz)
	if m.Config.MediaType != "application/vnd.cncf.helm.config.v1+json" || len(m.Layers) != 1 ||
		m.Layers[0].Digest.Hex != hex.EncodeToString(sum[:]) {
		t.Errorf("the chart artifact is config %s with layers %v, want the packaged chart", m.Config.MediaType, m.Layers)
	}
	out, err := exec.Command(helm, "show", "chart", "oci://"+host+"/pixxel/charts/taskdownload-operator",
		"--version", "9.8.7", "--plain-http").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "appVersion: v9.8.7") {
		t.Errorf("helm show chart: %v\n%s", err, out)
	}
}

func TestReleasePushRefusesAChangedRelease(t *testing.T) {
	dist, _ := fakeRelease(t)
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if err := os.WriteFile(filepath.Join(dist, "install.yaml"), []byte("kind: Changed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := releasePush(context.Background(), releasePushOptions{Dist: dist,
		Image: host + "/pixxel/taskdownload-operator:v9.8.7", ChartRepo: "oci://" + host + "/charts",
		Helm: filepath.Join(repoRoot(t), "bin", "helm")})
	if err == nil || !strings.Contains(err.Error(), "install.yaml changed since make release") {
		t.Fatalf("releasePush = %v", err)
	}
	if _, err := remote.Index(mustRef(t, host+"/pixxel/taskdownload-operator:v9.8.7")); err == nil {
		t.Error("the image was pushed anyway")
	}
}

// TestPushRefusesAnotherVersion: a layout built for one version is not published under another tag.
func TestPushRefusesAnotherVersion(t *testing.T) {
	dist, _ := fakeRelease(t)
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/pixxel/taskdownload-operator:v9.9.0"
	_, err := push(context.Background(), filepath.Join(dist, "image"), ref)
	if err == nil || !strings.Contains(err.Error(), `holds the image of "v9.8.7", not "v9.9.0"`) {
		t.Fatalf("push = %v", err)
	}
}

// TestMakeImagePushPushesTheRelease: after make release, make image-push publishes DIST/image.
func TestMakeImagePushPushesTheRelease(t *testing.T) {
	dist, want := fakeRelease(t)
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/pixxel/taskdownload-operator:v9.8.7"
	cmd := exec.Command("make", "--no-print-directory", "image-push", "DIST="+dist, "IMG="+ref)
	cmd.Dir = repoRoot(t)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make image-push: %v\n%s", err, out)
	}
	got, err := remote.Index(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("the registry holds %s, want the release's index %s", d, want)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
