package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// The rules the image keeps whatever the Dockerfile says.
const (
	wantUser       = "65532:65532"
	wantEntrypoint = "/manager"
	wantBase       = "gcr.io/distroless/static:nonroot"
	versionPkg     = "github.com/pixxel-space/taskdownload-operator/internal/version"
	fallbackRoots  = "golang.org/x/crypto/x509roots/fallback"
)

var (
	wantPlatforms  = []string{"linux/amd64", "linux/arm64"}
	wantBinaries   = []string{"/manager", "/fetch"}
	requiredLabels = []string{
		"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision",
		"org.opencontainers.image.created", "org.opencontainers.image.licenses",
	}
	// Any of these in the image would give an attacker a shell.
	shells = []string{"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "toybox"}
)

var (
	layoutOnce sync.Once
	layout     *Layout
	layoutErr  error
)

// openLayout reads the layout that make test builds first (IMAGE_LAYOUT, from `make image`); run on
// its own, the test builds one with `make image` into a temporary directory instead, never skipping.
func openLayout(t *testing.T) *Layout {
	t.Helper()
	layoutOnce.Do(func() {
		dir := os.Getenv("IMAGE_LAYOUT")
		if dir == "" {
			tmp, err := os.MkdirTemp("", "imagetest-")
			if err != nil {
				layoutErr = err
				return
			}
			// Left for the OS to clean: the layout is shared by every test of the package.
			dir = filepath.Join(tmp, "image")
			t.Logf("IMAGE_LAYOUT is unset: running make image IMAGE_LAYOUT=%s", dir)
			cmd := exec.Command("make", "--no-print-directory", "image", "IMAGE_LAYOUT="+dir)
			cmd.Dir = envtestutil.RepoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("%s", out)
				layoutErr = err
				return
			}
		}
		layout, layoutErr = Open(dir)
	})
	if layoutErr != nil {
		t.Fatalf("image layout: %v", layoutErr)
	}
	return layout
}

func dockerfile(t *testing.T) *Dockerfile {
	t.Helper()
	d, err := ParseDockerfile(filepath.Join(envtestutil.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDockerfileDescribesTheImage(t *testing.T) {
	g := NewWithT(t)
	d := dockerfile(t)
	g.Expect(d.Base).To(Equal(wantBase), "the final stage's base")
	g.Expect(d.User).To(Equal(wantUser))
	g.Expect(d.Entrypoint).To(Equal([]string{wantEntrypoint}))
	g.Expect(d.CopyDests).To(ConsistOf(wantBinaries))
	for _, l := range requiredLabels {
		g.Expect(d.Labels).To(HaveKey(l))
	}
	// The Dockerfile's binaries must be built as hack/image builds them.
	build := strings.Join(d.BuildRuns, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd ./cmd/fetch",
		"-X " + versionPkg + ".Version=${VERSION}", "-X " + versionPkg + ".Revision=${REVISION}"} {
		g.Expect(build).To(ContainSubstring(want), "the Dockerfile's go build")
	}
}

func TestImageLayoutAgreesWithDockerfile(t *testing.T) {
	l, d := openLayout(t), dockerfile(t)
	platforms := make([]string, 0, len(l.Images))
	for _, img := range l.Images {
		platforms = append(platforms, img.Descriptor.Platform.String())
	}
	NewWithT(t).Expect(platforms).To(ConsistOf(wantPlatforms))

	for _, img := range l.Images {
		t.Run(img.Descriptor.Platform.String(), func(t *testing.T) {
			g := NewWithT(t)
			c := img.Config
			g.Expect(c.OS + "/" + c.Architecture).To(Equal(img.Descriptor.Platform.String()))
			g.Expect(c.Config.User).To(Equal(d.User))
			g.Expect(c.Config.Entrypoint).To(Equal(d.Entrypoint))
			g.Expect(c.Config.Cmd).To(BeEmpty(), "arguments come from the Deployment, not the image")

			for _, dest := range d.CopyDests {
				f, ok := img.Files[dest]
				g.Expect(ok).To(BeTrue(), "the Dockerfile copies %s", dest)
				g.Expect(f.Type).To(Equal(byte(tar.TypeReg)), dest)
				g.Expect(f.Mode&0o777).To(Equal(int64(0o755)), dest)
			}

			// Every label the Dockerfile sets, with its value where the Dockerfile fixes one.
			g.Expect(slices.Sorted(maps.Keys(c.Config.Labels))).To(Equal(slices.Sorted(maps.Keys(d.Labels))))
			for k, v := range d.Labels {
				g.Expect(c.Config.Labels[k]).NotTo(BeEmpty(), k)
				if !strings.Contains(v, "${") {
					g.Expect(c.Config.Labels[k]).To(Equal(v), k)
				}
			}
		})
	}
}

func TestImageKeepsTheRules(t *testing.T) {
	l := openLayout(t)
	for _, img := range l.Images {
		t.Run(img.Descriptor.Platform.String(), func(t *testing.T) {
			g := NewWithT(t)
			c := img.Config
			g.Expect(c.Config.User).To(Equal(wantUser))
			g.Expect(c.Config.Entrypoint).To(Equal([]string{wantEntrypoint}))

			labels := c.Config.Labels
			for _, k := range requiredLabels {
				g.Expect(labels).To(HaveKeyWithValue(k, Not(BeEmpty())))
			}
			g.Expect(labels).To(HaveKeyWithValue("org.opencontainers.image.licenses", "Apache-2.0"))
			g.Expect(l.RefName).To(Equal(labels["org.opencontainers.image.version"]), "index.json's ref.name")

			for p := range img.Files {
				g.Expect(shells).NotTo(ContainElement(path.Base(p)), "a shell at %s", p)
			}
			g.Expect(img.Files).NotTo(HaveKey("/bin/sh"))

			// The user the image runs as exists, with a home, and /tmp is writable.
			g.Expect(string(img.Files["/etc/passwd"].Body)).To(ContainSubstring("nonroot:x:65532:65532:"))
			g.Expect(string(img.Files["/etc/group"].Body)).To(ContainSubstring("nonroot:x:65532:"))
			g.Expect(img.Files["/home/nonroot"].UID).To(Equal(65532))
			g.Expect(img.Files["/tmp"].Mode & 0o7777).To(Equal(int64(0o1777)))

			// Reproducible: every timestamp is the one creation time, and the label says it.
			created, err := time.Parse(time.RFC3339, labels["org.opencontainers.image.created"])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.Created.Equal(created)).To(BeTrue(), "config created %s, label %s", c.Created, created)
			for p, f := range img.Files {
				g.Expect(f.ModTime.Equal(created)).To(BeTrue(), "%s has mtime %s", p, f.ModTime)
			}

			for _, b := range wantBinaries {
				checkBinary(g, img, b)
			}
		})
	}
}

// checkBinary reads what the Go toolchain recorded in the binary: built for the image's platform,
// static, -trimpath, with fallback CA roots linked in; the manager stamped with the labels' revision.
func checkBinary(g Gomega, img Image, name string) {
	f, ok := img.Files[name]
	g.Expect(ok).To(BeTrue(), "%s is missing", name)
	info, err := buildinfo.Read(bytes.NewReader(f.Body))
	g.Expect(err).NotTo(HaveOccurred(), name)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	g.Expect(settings).To(HaveKeyWithValue("GOOS", img.Config.OS), name)
	g.Expect(settings).To(HaveKeyWithValue("GOARCH", img.Config.Architecture), name)
	g.Expect(settings).To(HaveKeyWithValue("CGO_ENABLED", "0"), name)
	g.Expect(settings).To(HaveKeyWithValue("-trimpath", "true"), name)
	// With -trimpath Go leaves -ldflags out of the build info, so look for the -X value itself: the
	// manager reports the revision the label names (TestBinariesRun runs --version on the host's).
	if name == wantEntrypoint {
		g.Expect(bytes.Contains(f.Body, []byte(img.Config.Config.Labels["org.opencontainers.image.revision"]))).
			To(BeTrue(), "%s is not stamped with the revision label", name)
	}
	deps := make([]string, 0, len(info.Deps))
	for _, m := range info.Deps {
		deps = append(deps, m.Path)
	}
	g.Expect(deps).To(ContainElement(fallbackRoots), "%s lacks CA roots for the scratch image", name)
}

// TestBinariesRun runs the host platform's /manager and /fetch from the image (linux/amd64 in CI).
func TestBinariesRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("the image's binaries are for linux; this host is %s", runtime.GOOS)
	}
	l := openLayout(t)
	host := runtime.GOOS + "/" + runtime.GOARCH
	i := slices.IndexFunc(l.Images, func(img Image) bool { return img.Descriptor.Platform.String() == host })
	if i < 0 {
		t.Fatalf("the image has no %s variant to run here", host)
	}
	img := l.Images[i]
	dir := t.TempDir()
	for _, b := range wantBinaries {
		if err := os.WriteFile(filepath.Join(dir, b), img.Files[b].Body, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(bin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(dir, bin), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
		return string(out)
	}
	g := NewWithT(t)
	g.Expect(run("manager", "--help")).To(And(ContainSubstring("-api-url"), ContainSubstring("-leader-elect")))
	g.Expect(run("fetch", "--help")).To(And(ContainSubstring("-url-file"), ContainSubstring("-dest")))
	labels := img.Config.Config.Labels
	g.Expect(strings.TrimSpace(run("manager", "--version"))).To(Equal(
		labels["org.opencontainers.image.version"] + " (revision " + labels["org.opencontainers.image.revision"] + ")"))
}
