package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var testPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// fakeBinaries stands in for go build: the assembly, not the compiler, is under test here
// (internal/imagetest checks the real binaries).
func fakeBinaries(t *testing.T) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	for _, p := range testPlatforms {
		dir := t.TempDir()
		for _, b := range []string{"manager", "fetch"} {
			if err := os.WriteFile(filepath.Join(dir, b), []byte(b+" for "+p.String()), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		dirs[p.String()] = dir
	}
	return dirs
}

func testMeta(created time.Time) Metadata {
	return Metadata{Version: "v9.8.7", Revision: "0123abc", Source: "https://example.com/src", Created: created}
}

func TestAssembleIsReproducible(t *testing.T) {
	bins := fakeBinaries(t)
	created := time.Unix(1_700_000_000, 0)
	digest := func(m Metadata) v1.Hash {
		t.Helper()
		idx, err := Assemble(testPlatforms, bins, m)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest(testMeta(created))
	if again := digest(testMeta(created)); again != first {
		t.Errorf("same inputs gave digests %s and %s", first, again)
	}
	if later := digest(testMeta(created.Add(time.Second))); later == first {
		t.Errorf("a different creation time gave the same digest %s", first)
	}
}

func TestWriteLayoutThenPushToRegistry(t *testing.T) {
	idx, err := Assemble(testPlatforms, fakeBinaries(t), testMeta(time.Unix(1_700_000_000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image")
	if err := writeLayout(out, idx, "v9.8.7"); err != nil {
		t.Fatal(err)
	}
	// A second build replaces the layout in place.
	if err := writeLayout(out, idx, "v9.8.7"); err != nil {
		t.Fatalf("replacing a layout: %v", err)
	}

	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/pixxel/taskdownload-operator:v9.8.7"
	pushed, err := push(context.Background(), out, ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if !strings.HasSuffix(pushed, "@"+want.String()) {
		t.Errorf("push returned %s, want the index digest %s", pushed, want)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if gotDigest, _ := got.Digest(); gotDigest != want || len(m.Manifests) != len(testPlatforms) {
		t.Fatalf("registry holds index %s with %d manifests, want %s with %d",
			gotDigest, len(m.Manifests), want, len(testPlatforms))
	}
	for i, d := range m.Manifests {
		if d.Platform == nil || d.Platform.String() != testPlatforms[i].String() {
			t.Errorf("manifest %d has platform %v, want %s", i, d.Platform, testPlatforms[i])
		}
		img, err := got.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.User != user || cfg.Config.Labels["org.opencontainers.image.version"] != "v9.8.7" {
			t.Errorf("pulled config has user %q and labels %v", cfg.Config.User, cfg.Config.Labels)
		}
	}
}

func TestWriteLayoutRefusesToReplaceOtherDirectories(t *testing.T) {
	out := t.TempDir()
	keep := filepath.Join(out, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	idx, err := Assemble(testPlatforms, fakeBinaries(t), testMeta(time.Unix(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeLayout(out, idx, "v1"); err == nil {
		t.Fatal("writeLayout replaced a directory that is not an image layout")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the directory's file is gone: %v", err)
	}
}

func TestParsePlatforms(t *testing.T) {
	got, err := parsePlatforms("linux/amd64, linux/arm64")
	if err != nil || len(got) != 2 || got[1].Architecture != "arm64" {
		t.Errorf("parsePlatforms = %v, %v", got, err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "linux/arm/v7/x"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("parsePlatforms(%q) accepted it", bad)
		}
	}
}
