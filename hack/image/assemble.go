package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed shape. The Dockerfile describes the same image on distroless/static:nonroot;
// internal/imagetest checks that both agree.
const (
	nonroot    = 65532
	user       = "65532:65532"
	entrypoint = "/manager"
)

// description matches the Dockerfile's LABEL, which internal/imagetest compares.
const description = "Publishes signed URLs of platform task outputs to ConfigMaps or Secrets; " +
	"/fetch downloads them in pods"

// Metadata is what identifies one build in the image's labels and annotations.
type Metadata struct {
	Version  string
	Revision string
	Source   string
	Created  time.Time
}

func (m Metadata) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "taskdownload-operator",
		"org.opencontainers.image.description": description,
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.url":         m.Source,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
}

// file is one entry of a layer; an empty body with a directory mode makes a directory.
type file struct {
	name     string
	mode     int64
	uid, gid int
	body     []byte
	dir      bool
}

// baseFiles stand in for distroless/static:nonroot's base: the users a non-root process may be
// looked up as, its home and a writable /tmp. There is no shell and no package manager.
func baseFiles() []file {
	return []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: nonroot, gid: nonroot, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
}

// layer writes files as an uncompressed tar with every timestamp at created, so the same inputs give
// the same digest.
func layer(files []file, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: created}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// binaryFiles reads the platform's /manager and /fetch from dir.
func binaryFiles(dir string) ([]file, error) {
	var files []file
	for _, name := range []string{"manager", "fetch"} {
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: name, mode: 0o755, body: body})
	}
	return files, nil
}

// assembleImage makes one platform's image: the shared base layer, then a layer with its binaries.
func assembleImage(p v1.Platform, base v1.Layer, binDir string, m Metadata) (v1.Image, error) {
	bins, err := binaryFiles(binDir)
	if err != nil {
		return nil, err
	}
	app, err := layer(bins, m.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: m.Created.UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			User:       user,
			Entrypoint: []string{entrypoint},
			WorkingDir: "/",
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels:     m.labels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "hack/image: users root, nobody, nonroot (65532); /home/nonroot; /tmp"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "hack/image: /manager and /fetch (CGO_ENABLED=0, -trimpath)"}},
	)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, m.labels()).(v1.Image), nil
}

// Assemble makes the multi-platform index from binDirs, which maps each platform to a directory
// holding its manager and fetch binaries.
func Assemble(platforms []v1.Platform, binDirs map[string]string, m Metadata) (v1.ImageIndex, error) {
	base, err := layer(baseFiles(), m.Created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := assembleImage(p, base, binDirs[p.String()], m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	return mutate.Annotations(idx, m.labels()).(v1.ImageIndex), nil
}
