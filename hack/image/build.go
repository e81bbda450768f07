package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

const versionPkg = "github.com/pixxel-space/taskdownload-operator/internal/version"

type buildOptions struct {
	Root      string
	Out       string
	Platforms []v1.Platform
	Meta      Metadata
}

func build(ctx context.Context, o buildOptions) error {
	work, err := os.MkdirTemp("", "taskdownload-image-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()

	binDirs := map[string]string{}
	for _, p := range o.Platforms {
		dir := filepath.Join(work, p.OS+"-"+p.Architecture)
		fmt.Fprintf(os.Stderr, "image: building /manager and /fetch for %s\n", p)
		if err := goBuild(ctx, o.Root, dir, p, o.Meta); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		binDirs[p.String()] = dir
	}
	idx, err := Assemble(o.Platforms, binDirs, o.Meta)
	if err != nil {
		return err
	}
	if err := writeLayout(o.Out, idx, o.Meta.Version); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: wrote %s (index %s)\n", o.Out, d)
	return nil
}

// goBuild compiles both commands in one go invocation, so packages they share compile once. The
// version and revision are linked in; VCS stamping is off because it would record whether the work
// tree was clean, which changes the digest without changing the code.
func goBuild(ctx context.Context, root, dir string, p v1.Platform, m Metadata) error {
	ldflags := fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Revision=%s", versionPkg, m.Version, versionPkg, m.Revision)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags,
		"-o", dir+string(filepath.Separator), "./cmd", "./cmd/fetch")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	// go build names a main package after its directory: ./cmd becomes "cmd".
	return os.Rename(filepath.Join(dir, "cmd"), filepath.Join(dir, "manager"))
}

// writeLayout writes idx as the one entry of a new layout at out, then swaps it in, so a failed build
// leaves the previous layout whole. It refuses to replace a directory that is not a layout.
func writeLayout(out string, idx v1.ImageIndex, refName string) error {
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(out, "oci-layout")); err != nil {
			return fmt.Errorf("%s exists and is not an OCI image layout; not replacing it", out)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+"-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": refName,
	})); err != nil {
		return err
	}
	// MkdirTemp makes 0700; a layout is read by other users and tools.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
