// Package imagetest checks the operator image that `make image` writes as an OCI image layout against
// the Dockerfile and the rules the image must keep. It reads the layout with the standard library
// only, independently of the go-containerregistry code (hack/image) that wrote it, and verifies every
// blob's digest on the way.
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Media types of the OCI image spec that a layout from hack/image uses.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Descriptor points at a blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform is a descriptor's os/arch.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string { return p.OS + "/" + p.Architecture }

type index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []Descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations"`
}

// Config is the part of an image configuration the checks read.
type Config struct {
	OS           string    `json:"os"`
	Architecture string    `json:"architecture"`
	Created      time.Time `json:"created"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// File is one entry of an image's file system, later layers winning.
type File struct {
	Mode     int64 // permission bits and setuid/setgid/sticky, as in the tar header
	Type     byte  // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, ...
	UID, GID int
	ModTime  time.Time
	Link     string // symlink or hard link target
	Body     []byte // regular files only
}

// Image is one platform's image: its descriptor in the index, its manifest and config, and its files
// keyed by absolute path ("/manager").
type Image struct {
	Descriptor Descriptor
	Manifest   manifest
	Config     Config
	Files      map[string]File
}

// Layout is a parsed OCI image layout holding one multi-platform image index.
type Layout struct {
	Dir      string
	RefName  string            // org.opencontainers.image.ref.name of index.json's one entry
	Index    Descriptor        // the image index's descriptor in index.json
	IndexAnn map[string]string // the image index's own annotations
	Images   []Image
}

// Open reads the layout at dir: index.json's one image index, each platform's manifest, config and
// layers. Every blob is checked against its digest and size, and each layer against its diff_id.
func Open(dir string) (*Layout, error) {
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := readJSON(filepath.Join(dir, "oci-layout"), &marker); err != nil {
		return nil, fmt.Errorf("%s is not an OCI image layout: %w", dir, err)
	}
	if marker.Version != "1.0.0" {
		return nil, fmt.Errorf("imageLayoutVersion %q, want 1.0.0", marker.Version)
	}
	var top index
	if err := readJSON(filepath.Join(dir, "index.json"), &top); err != nil {
		return nil, err
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != MediaTypeIndex {
		return nil, fmt.Errorf("index.json has %d entries, want one image index", len(top.Manifests))
	}
	l := &Layout{Dir: dir, Index: top.Manifests[0], RefName: top.Manifests[0].Annotations["org.opencontainers.image.ref.name"]}
	var idx index
	if err := l.blobJSON(l.Index, &idx); err != nil {
		return nil, err
	}
	if idx.MediaType != MediaTypeIndex {
		return nil, fmt.Errorf("image index has media type %q", idx.MediaType)
	}
	l.IndexAnn = idx.Annotations
	for _, d := range idx.Manifests {
		img, err := l.image(d)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", d.Platform, err)
		}
		l.Images = append(l.Images, img)
	}
	return l, nil
}

func (l *Layout) image(d Descriptor) (Image, error) {
	img := Image{Descriptor: d, Files: map[string]File{}}
	if d.Platform == nil {
		return img, errors.New("manifest descriptor without a platform")
	}
	if err := l.blobJSON(d, &img.Manifest); err != nil {
		return img, err
	}
	if img.Manifest.Config.MediaType != MediaTypeConfig {
		return img, fmt.Errorf("config media type %q", img.Manifest.Config.MediaType)
	}
	if err := l.blobJSON(img.Manifest.Config, &img.Config); err != nil {
		return img, err
	}
	if len(img.Manifest.Layers) != len(img.Config.RootFS.DiffIDs) {
		return img, fmt.Errorf("%d layers but %d diff_ids", len(img.Manifest.Layers), len(img.Config.RootFS.DiffIDs))
	}
	for i, ld := range img.Manifest.Layers {
		if ld.MediaType != MediaTypeLayer {
			return img, fmt.Errorf("layer %d has media type %q", i, ld.MediaType)
		}
		data, err := l.blob(ld)
		if err != nil {
			return img, err
		}
		if err := readLayer(data, img.Config.RootFS.DiffIDs[i], img.Files); err != nil {
			return img, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return img, nil
}

// blob reads the blob d names and checks its size and digest.
func (l *Layout) blob(d Descriptor) ([]byte, error) {
	alg, hexDigest, ok := strings.Cut(d.Digest, ":")
	if !ok || alg != "sha256" {
		return nil, fmt.Errorf("digest %q is not sha256", d.Digest)
	}
	data, err := os.ReadFile(filepath.Join(l.Dir, "blobs", alg, filepath.Base(hexDigest)))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s has %d bytes, descriptor says %d", d.Digest, len(data), d.Size)
	}
	if got := sha256Hex(data); got != hexDigest {
		return nil, fmt.Errorf("blob %s has digest sha256:%s", d.Digest, got)
	}
	return data, nil
}

func (l *Layout) blobJSON(d Descriptor, v any) error {
	data, err := l.blob(d)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// readLayer applies a gzip'd tar layer onto files, checking its uncompressed digest against diffID.
func readLayer(data []byte, diffID string, files map[string]File) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, h))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)
		if base := path.Base(name); strings.HasPrefix(base, ".wh.") {
			return fmt.Errorf("whiteout %s: the image's layers only add files", name)
		}
		f := File{Mode: hdr.Mode, Type: hdr.Typeflag, UID: hdr.Uid, GID: hdr.Gid, ModTime: hdr.ModTime, Link: hdr.Linkname}
		if hdr.Typeflag == tar.TypeReg {
			if f.Body, err = io.ReadAll(tr); err != nil {
				return err
			}
		}
		files[name] = f
	}
	// Drain the tar's end padding so that the digest covers the whole stream.
	if _, err := io.Copy(io.Discard, io.TeeReader(zr, h)); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return fmt.Errorf("uncompressed digest %s, config's diff_id %s", got, diffID)
	}
	return nil
}

func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
