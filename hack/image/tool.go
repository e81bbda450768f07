package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// runTool builds a one-binary image for this machine's platform from a main package of the module at
// --root, on the same base as the operator's image: the small helper images make e2e needs (its
// pause image, its checker) where no registry can be pulled from.
//
//	image tool --root ../.. --main ./test/e2e/images/pause --out ../../bin/e2e/images/pause --tag e2e
func runTool(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tool", flag.ExitOnError)
	root := fs.String("root", ".", "The module root.")
	mainPkg := fs.String("main", "",
		"Main package to build, relative to --root (required); the binary is /<its base name>.")
	out := fs.String("out", "", "Directory to write the OCI image layout to (required).")
	tag := fs.String("tag", "e2e", "Tag recorded as the layout's org.opencontainers.image.ref.name.")
	user := fs.String("user", "65532:65532", "User the image runs as.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mainPkg == "" || *out == "" {
		return errors.New("tool: --main and --out are required")
	}
	name := filepath.Base(*mainPkg)
	body, err := buildStatic(ctx, *root, *mainPkg)
	if err != nil {
		return err
	}
	idx, err := toolImage(name, body, *user)
	if err != nil {
		return err
	}
	if err := writeLayout(*out, idx, *tag); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: wrote %s (/%s, tag %s)\n", *out, name, strings.TrimSpace(*tag))
	return nil
}

// buildStatic builds mainPkg (relative to root) as a static, stripped Linux binary for this machine's
// architecture, and returns it.
func buildStatic(ctx context.Context, root, mainPkg string) ([]byte, error) {
	work, err := os.MkdirTemp("", "image-tool-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	bin := filepath.Join(work, filepath.Base(mainPkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w",
		"-o", bin, mainPkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s: %w", mainPkg, err)
	}
	return os.ReadFile(bin)
}

// toolImage is a one-platform OCI index of an image holding the base files and the binary /name,
// which is its entrypoint, run as user; every timestamp is the epoch, so the same binary gives the same
// digest.
func toolImage(name string, body []byte, user string) (v1.ImageIndex, error) {
	created := time.Unix(0, 0).UTC()
	base, err := layer(baseFiles(), created)
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{{name: name, mode: 0o755, body: body}}, created)
	if err != nil {
		return nil, err
	}
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Architecture, OS: p.OS, Created: v1.Time{Time: created},
		Config: v1.Config{User: user, Entrypoint: []string{"/" + name}, WorkingDir: "/"},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	if img, err = mutate.AppendLayers(img, base, app); err != nil {
		return nil, err
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}), nil
}
