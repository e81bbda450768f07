package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// releasePushOptions name a release written by make release and where it goes.
type releasePushOptions struct {
	Dist      string // make release's DIST
	Image     string // the image's repository:VERSION
	ChartRepo string // oci://registry/path the chart is pushed under
	Helm      string // helm binary
}

// pushed is what release-push published, each by digest: what cosign signs.
type pushed struct {
	Image string // repository@sha256:…
	Chart string // registry/path/taskdownload-operator@sha256:…
}

// releasePush checks DIST against its checksums.txt, then pushes the image layout and the chart (an
// OCI artifact, with helm push), and returns both by digest.
func releasePush(ctx context.Context, o releasePushOptions, opts ...remote.Option) (pushed, error) {
	tag, err := name.NewTag(o.Image, name.StrictValidation)
	if err != nil {
		return pushed{}, fmt.Errorf("--image %q: want repository:VERSION: %w", o.Image, err)
	}
	repo, ok := strings.CutPrefix(o.ChartRepo, "oci://")
	if !ok || repo == "" {
		return pushed{}, fmt.Errorf("--chart-repo %q: want oci://registry/path", o.ChartRepo)
	}
	if err := verifyChecksums(o.Dist); err != nil {
		return pushed{}, err
	}
	chart := filepath.Join(o.Dist, "taskdownload-operator-"+strings.TrimPrefix(tag.TagStr(), "v")+".tgz")
	if _, err := os.Stat(chart); err != nil {
		return pushed{}, fmt.Errorf("%w (make release VERSION=%s writes it)", err, tag.TagStr())
	}

	var out pushed
	if out.Image, err = push(ctx, filepath.Join(o.Dist, "image"), o.Image, opts...); err != nil {
		return pushed{}, fmt.Errorf("pushing the image: %w", err)
	}
	args := []string{"push", chart, o.ChartRepo}
	if isLoopback(strings.SplitN(repo, "/", 2)[0]) {
		args = append(args, "--plain-http") // as go-containerregistry does for a local registry
	}
	cmd := exec.CommandContext(ctx, o.Helm, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return pushed{}, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, buf.String())
	}
	// helm push prints "Pushed: <registry/path/name>:<version>" and "Digest: sha256:…".
	ref := regexp.MustCompile(`(?m)^Pushed: (\S+):[^:/\s]+$`).FindStringSubmatch(buf.String())
	digest := regexp.MustCompile(`(?m)^Digest: (sha256:[0-9a-f]{64})$`).FindStringSubmatch(buf.String())
	if ref == nil || digest == nil {
		return pushed{}, fmt.Errorf("helm push printed no reference and digest:\n%s", buf.String())
	}
	out.Chart = ref[1] + "@" + digest[1]
	return out, nil
}

// isLoopback reports whether host (with an optional port) is this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// verifyChecksums checks every file checksums.txt in dir lists (sha256sum's format), so that what is
// pushed is what make release wrote.
func verifyChecksums(dir string) error {
	f, err := os.Open(filepath.Join(dir, "checksums.txt"))
	if err != nil {
		return fmt.Errorf("%w (make release writes it)", err)
	}
	defer func() { _ = f.Close() }()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			return fmt.Errorf("%s/checksums.txt: malformed line %q", dir, sc.Text())
		}
		got, err := sha256File(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s changed since make release: sha256 %s, checksums.txt says %s", file, got, want)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New(dir + "/checksums.txt lists no file")
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // a file checksums.txt names
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
