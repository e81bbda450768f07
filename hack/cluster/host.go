package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// cniDirs are where Debian (and most distributions) put the CNI plugins.
var cniDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

func cniBinDir() string {
	for _, d := range cniDirs {
		if _, err := os.Stat(filepath.Join(d, "loopback")); err == nil {
			return d
		}
	}
	return cniDirs[0]
}

// missingPackages names the OS packages whose commands are not here.
func missingPackages() []string {
	var missing []string
	for cmd, pkg := range map[string]string{containerd: containerd, "ctr": containerd, "runc": "runc"} {
		if _, err := exec.LookPath(cmd); err != nil && !slices.Contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if _, err := os.Stat(filepath.Join(cniBinDir(), "loopback")); err != nil {
		missing = append(missing, "containernetworking-plugins")
	}
	return missing
}

// ensurePackages installs containerd, runc and the CNI plugins with apt-get when they are missing,
// or says in one line what to install where it cannot.
func ensurePackages() error {
	missing := missingPackages()
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("install %s (containerd 1.6+, runc, the CNI loopback plugin in %s) and run again",
			strings.Join(missing, " "), strings.Join(cniDirs, " or "))
	}
	logf("installing %s with apt-get", strings.Join(missing, " "))
	install := func() error {
		cmd := exec.Command("apt-get", append([]string{"install", "-y", "--no-install-recommends"}, missing...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if install() != nil {
		update := exec.Command("apt-get", "update")
		update.Stdout, update.Stderr = os.Stderr, os.Stderr
		if err := update.Run(); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
		if err := install(); err != nil {
			return fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
		}
	}
	if still := missingPackages(); len(still) > 0 {
		return fmt.Errorf("apt-get installed, yet %s are still missing", strings.Join(still, " "))
	}
	return nil
}

func newProcessGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// tarLayout writes the OCI image layout dir as a tar file, the form ctr images import reads.
func tarLayout(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return "", fmt.Errorf("%s is not an OCI image layout: %w", dir, err)
	}
	f, err := os.CreateTemp("", "e2e-image-*.tar")
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = src.Close() }()
		_, err = io.Copy(tw, src)
		return err
	})
	err = errors.Join(err, tw.Close(), f.Close())
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
