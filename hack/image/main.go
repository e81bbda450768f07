// Command image builds the operator's multi-platform image without a container engine and pushes it.
//
//	go run . build --root ../.. --out ../../bin/image --version v0.1.0 --revision $(git rev-parse HEAD)
//	go run . push --layout ../../bin/image ghcr.io/pixxel-space/taskdownload-operator:v0.1.0
//	go run . release-push --dist ../../dist --image ghcr.io/pixxel-space/taskdownload-operator:v0.1.0 \
//		--chart-repo oci://ghcr.io/pixxel-space/charts --helm ../../bin/helm
//	go run . tool --root ../.. --main ./test/e2e/images/pause --out ../../bin/e2e/images/pause
//
// build compiles /manager and /fetch for each platform (CGO_ENABLED=0, -trimpath), puts them on a
// base made from nothing (users, /home/nonroot, /tmp) and writes an OCI image layout whose index.json
// names one image index, annotated with the version as org.opencontainers.image.ref.name. Every
// timestamp is --created (SOURCE_DATE_EPOCH), so a commit always gives the same digest.
//
// It is its own Go module so that go-containerregistry stays out of the operator's go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: image build|push|release-push|tool [flags]")
	}
	switch args[0] {
	case "build":
		return runBuild(ctx, args[1:])
	case "push":
		return runPush(ctx, args[1:])
	case "release-push":
		return runReleasePush(ctx, args[1:])
	case "tool":
		return runTool(ctx, args[1:])
	default:
		return fmt.Errorf("unknown command %q: want build, push, release-push or tool", args[0])
	}
}

func runBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	var (
		o       buildOptions
		created string
		plats   string
	)
	fs.StringVar(&o.Root, "root", ".", "The operator's module root.")
	fs.StringVar(&o.Out, "out", "bin/image", "Directory to write the OCI image layout to (replaced).")
	fs.StringVar(&o.Meta.Version, "version", "", "Version stamped into the binaries and labels (required).")
	fs.StringVar(&o.Meta.Revision, "revision", "", "VCS revision stamped into the binaries and labels (required).")
	fs.StringVar(&o.Meta.Source, "source", "https://github.com/pixxel-space/taskdownload-operator",
		"Source repository URL for the org.opencontainers.image.source label.")
	fs.StringVar(&created, "created", os.Getenv("SOURCE_DATE_EPOCH"),
		"Creation time in Unix seconds for every timestamp in the image (default $SOURCE_DATE_EPOCH; required).")
	fs.StringVar(&plats, "platforms", "linux/amd64,linux/arm64", "Comma-separated platforms to build.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Meta.Version == "" || o.Meta.Revision == "" {
		return errors.New("build: --version and --revision are required")
	}
	secs, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return fmt.Errorf("build: --created %q is not Unix seconds (set it or SOURCE_DATE_EPOCH)", created)
	}
	o.Meta.Created = time.Unix(secs, 0).UTC()
	if o.Platforms, err = parsePlatforms(plats); err != nil {
		return err
	}
	return build(ctx, o)
}

func runPush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	layoutDir := fs.String("layout", "bin/image", "OCI image layout written by build.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("push: want exactly one image reference, such as ghcr.io/pixxel-space/taskdownload-operator:v0.1.0")
	}
	digest, err := push(ctx, *layoutDir, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Println(digest)
	return nil
}

func runReleasePush(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("release-push", flag.ExitOnError)
	var o releasePushOptions
	fs.StringVar(&o.Dist, "dist", "dist", "Directory make release wrote (install.yaml, the chart, image/, checksums.txt).")
	fs.StringVar(&o.Image, "image", "", "Image repository:VERSION to push image/ to (required).")
	fs.StringVar(&o.ChartRepo, "chart-repo", "", "oci://registry/path to push the chart under (required).")
	fs.StringVar(&o.Helm, "helm", "helm", "The helm binary (helm push; credentials from helm registry login).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Image == "" || o.ChartRepo == "" || fs.NArg() != 0 {
		return errors.New("release-push: --image and --chart-repo are required, and nothing else")
	}
	p, err := releasePush(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("image %s\nchart %s\n", p.Image, p.Chart)
	return nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for p := range strings.SplitSeq(s, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || goos == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("platform %q: want os/arch, such as linux/arm64", p)
		}
		out = append(out, v1.Platform{OS: goos, Architecture: arch})
	}
	return out, nil
}
