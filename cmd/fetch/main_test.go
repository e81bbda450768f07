package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "fetch-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fetch")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", &buildError{string(out)}
	}
	return bin, nil
})

type buildError struct{ out string }

func (e *buildError) Error() string { return "go build: " + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildOnce(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// runBinary runs the built command as a Job would, and returns its exit code and output.
func runBinary(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	bin, err := buildOnce()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else {
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
	}
	return code, stdout.String(), stderr.String()
}

func tarGz(t *testing.T, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = 4
		}
		NewWithT(t).Expect(tw.WriteHeader(&h)).To(Succeed())
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte("data"))
		}
	}
	NewWithT(t).Expect(tw.Close()).To(Succeed())
	NewWithT(t).Expect(gz.Close()).To(Succeed())
	return buf.Bytes()
}

// The exit codes are the command's contract with Jobs (podFailurePolicy) and people: each one is
// checked on the built binary.
func TestExitCodes(t *testing.T) {
	safe := tarGz(t, tar.Header{Name: "scene/band1.tif", Typeflag: tar.TypeReg, Mode: 0o600})
	unsafe := tarGz(t,
		tar.Header{Name: "y", Typeflag: tar.TypeSymlink, Linkname: "."},
		tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "y/.."})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/safe.tar.gz":
			_, _ = w.Write(safe)
		case "/unsafe.tar.gz":
			_, _ = w.Write(unsafe)
		case "/.fetch-download.partial", "/.fetch-download.json":
			_, _ = w.Write([]byte("plain data, not an archive"))
		case "/drip.tar.gz": // a byte every 100ms: never idle long enough for --idle-timeout
			w.Header().Set("Content-Length", "1048576")
			for i := 0; r.Context().Err() == nil; i++ {
				_, _ = w.Write(safe[i%len(safe) : i%len(safe)+1])
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	urlFile := func(t *testing.T, path string) string {
		f := filepath.Join(t.TempDir(), "SIGNED_URL")
		NewWithT(t).Expect(os.WriteFile(f, []byte(srv.URL+path+"?X-Amz-Signature=SECRET\n"), 0o600)).To(Succeed())
		return f
	}

	for _, tc := range []struct {
		name   string
		env    []string
		args   func(t *testing.T, dest string) []string
		code   int
		stderr string
	}{
		{"done", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/safe.tar.gz"), "--dest", dest, "--max-bytes", "50Gi"}
		}, fetch.ExitOK, "Extracted package"},
		{"unknown flag", nil, func(t *testing.T, dest string) []string {
			return []string{"--no-such-flag"}
		}, fetch.ExitUsage, "flag provided but not defined"},
		{"bad quantity", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file=f", "--dest", dest, "--max-bytes=lots"}
		}, fetch.ExitUsage, "not a quantity"},
		{"no --dest", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file=f"}
		}, fetch.ExitUsage, "--dest is required"},
		{"empty --url-env", []string{"FETCH_TEST_URL="}, func(t *testing.T, dest string) []string {
			return []string{"--url-env=FETCH_TEST_URL", "--dest", dest}
		}, fetch.ExitNoURL, "$FETCH_TEST_URL is empty"},
		{"no URL within --wait-timeout", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", filepath.Join(t.TempDir(), "missing"), "--dest", dest, "--wait-timeout=300ms"}
		}, fetch.ExitNoURL, "no URL appeared"},
		{"download failed", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/gone.tar.gz"), "--dest", dest, "--retries=0"}
		}, fetch.ExitDownloadFailed, "404 Not Found"},
		{"package refused", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/unsafe.tar.gz"), "--dest", dest}
		}, fetch.ExitRefused, `"x" is a symbolic link that resolves outside the destination`},
		{"reserved --output-name", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/safe.tar.gz"), "--dest", dest, "--extract=none",
				"--output-name=.fetch-download.partial"}
		}, fetch.ExitUsage, "a name fetch keeps for its own files"},
		{"URL named like fetch's state", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/.fetch-download.json"), "--dest", dest, "--extract=none"}
		}, fetch.ExitUsage, "set --output-name"},
		{"URL named like fetch's partial file, found to be no archive", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/.fetch-download.partial"), "--dest", dest}
		}, fetch.ExitUsage, "set --output-name"},
		{"a drip just under --idle-timeout", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/drip.tar.gz"), "--dest", dest, "--timeout=1s", "--idle-timeout=1m"}
		}, fetch.ExitDownloadFailed, "did not finish within --timeout"},
		{"bad --log-format", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file=f", "--dest", dest, "--log-format=xml"}
		}, fetch.ExitUsage, "--log-format must be text or json"},
		{"over --max-bytes", nil, func(t *testing.T, dest string) []string {
			return []string{"--url-file", urlFile(t, "/safe.tar.gz"), "--dest", dest, "--max-bytes=10"}
		}, fetch.ExitRefused, "--max-bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dest := filepath.Join(t.TempDir(), "data")
			start := time.Now()
			code, _, stderr := runBinary(t, tc.env, tc.args(t, dest)...)
			g.Expect(code).To(Equal(tc.code), stderr)
			g.Expect(stderr).To(ContainSubstring(tc.stderr))
			g.Expect(stderr).NotTo(ContainSubstring("SECRET"))
			g.Expect(time.Since(start)).To(BeNumerically("<", time.Minute), "no wait beyond what the flags allow")
			if code != fetch.ExitOK {
				entries, _ := os.ReadDir(dest)
				g.Expect(entries).To(BeEmpty(), "nothing saved or left behind")
			}
			if code == fetch.ExitOK {
				info, err := os.Stat(filepath.Join(dest, "scene", "band1.tif"))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o644)))
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	g := NewWithT(t)
	code, stdout, _ := runBinary(t, nil, "--help")
	g.Expect(code).To(Equal(0))
	g.Expect(stdout).To(ContainSubstring(fetch.ExitCodes))
	g.Expect(stdout).To(ContainSubstring("-retry-delay duration\n    \tFirst delay between attempts; it doubles, "+
		"with up to 50% random jitter, up to --retry-max-delay. (default 1s)"),
		"the help states the default that is used")
	g.Expect(stdout).To(ContainSubstring("(default 50Gi)"))
	g.Expect(stdout).To(ContainSubstring("-idle-timeout duration"))
	g.Expect(stdout).To(ContainSubstring("(default 0644)"))
	g.Expect(stdout).To(ContainSubstring("-timeout duration\n    \tLongest run, waits and retries included; " +
		"a download still going then ends with exit code 4. (default 6h0m0s)"))

	code, stdout, _ = runBinary(t, nil, "--version")
	g.Expect(code).To(Equal(0))
	g.Expect(stdout).To(MatchRegexp(`^fetch \S+ \(revision \S+\)\n$`))
}

func TestMaxBytesTakesQuantities(t *testing.T) {
	for in, want := range map[string]int64{
		"50Gi": 50 << 30, "500M": 500_000_000, "1.5Gi": 3 << 29, "1048576": 1 << 20, "1k": 1000,
	} {
		var v int64
		NewWithT(t).Expect(bytesFlag{&v}.Set(in)).To(Succeed(), in)
		NewWithT(t).Expect(v).To(Equal(want), in)
	}
	for _, in := range []string{"0", "-1Gi", "lots", "9223372036854775808"} {
		var v int64
		NewWithT(t).Expect(bytesFlag{&v}.Set(in)).NotTo(Succeed(), in)
	}
}

func TestModeFlags(t *testing.T) {
	g := NewWithT(t)
	var m os.FileMode
	g.Expect(modeFlag{&m}.Set("0640")).To(Succeed())
	g.Expect(m).To(Equal(os.FileMode(0o640)))
	g.Expect(modeFlag{&m}.Set("755")).To(Succeed())
	g.Expect(m).To(Equal(os.FileMode(0o755)))
	for _, in := range []string{"0999", "rw-r--r--", "01777", "0"} {
		g.Expect(modeFlag{&m}.Set(in)).NotTo(Succeed(), in)
	}
}

// The README's table is what users read; it must list the codes the command uses.
func TestREADMEDocumentsTheExitCodes(t *testing.T) {
	g := NewWithT(t)
	readme, err := os.ReadFile("../../README.md")
	g.Expect(err).NotTo(HaveOccurred())
	for code := range 6 {
		g.Expect(regexp.MustCompile("(?m)^\\| `"+string(rune('0'+code))+"` \\|").Match(readme)).To(BeTrue(),
			"README has a row for exit code %d", code)
	}
	g.Expect(strings.Contains(string(readme), "--max-entries")).To(BeTrue())
}

// The sample Jobs must be able to hold what their fetch accepts: a tar or tar.gz is extracted while it
// downloads, so the volume holds the extracted tree only, and its sizeLimit is at least --max-bytes with
// 5% to spare (directories, the record), or the kubelet evicts the pod where fetch would have refused
// the package with a clear exit code.
func TestSampleVolumesHoldWhatFetchAccepts(t *testing.T) {
	files, err := filepath.Glob("../../config/samples/*.yaml")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	checked := 0
	for _, file := range files {
		for _, job := range sampleJobs(t, file) {
			spec := job.Spec.Template.Spec
			for _, c := range spec.InitContainers {
				if len(c.Command) == 0 || c.Command[0] != "/fetch" {
					continue
				}
				t.Run(filepath.Base(file), func(t *testing.T) {
					g := NewWithT(t)
					var maxBytes int64
					for _, a := range c.Args {
						if v, ok := strings.CutPrefix(a, "--max-bytes="); ok {
							g.Expect(bytesFlag{&maxBytes}.Set(v)).To(Succeed())
						}
					}
					g.Expect(maxBytes).To(BeNumerically(">", 0), "the sample sets --max-bytes")
					var limit *resource.Quantity
					for _, v := range spec.Volumes {
						if v.EmptyDir != nil {
							limit = v.EmptyDir.SizeLimit
						}
					}
					g.Expect(limit).NotTo(BeNil(), "the emptyDir has a sizeLimit")
					g.Expect(limit.Value()).To(BeNumerically(">=", maxBytes+maxBytes/20))
					g.Expect(limit.Value()).To(BeNumerically("<", 2*maxBytes), "the volume is no longer twice the package")
				})
				checked++
			}
		}
	}
	NewWithT(t).Expect(checked).To(BeNumerically(">=", 1))
}

func TestSampleJobFailsOnRefusedPackages(t *testing.T) {
	g := NewWithT(t)
	jobs := sampleJobs(t, "../../config/samples/taskdownload_job_fetch.yaml")
	g.Expect(jobs).To(HaveLen(1))
	g.Expect(jobs[0].Spec.PodFailurePolicy).NotTo(BeNil())
	g.Expect(jobs[0].Spec.PodFailurePolicy.Rules[0].OnExitCodes.Values).To(ContainElement(int32(fetch.ExitRefused)))
}

func sampleJobs(t *testing.T, file string) []batchv1.Job {
	f, err := os.Open(file)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	defer func() { _ = f.Close() }()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var jobs []batchv1.Job
	for {
		var obj batchv1.Job
		if err := dec.Decode(&obj); err != nil {
			NewWithT(t).Expect(err).To(MatchError(io.EOF))
			return jobs
		}
		if obj.Kind == "Job" {
			jobs = append(jobs, obj)
		}
	}
}

// With --log-format=json every line is a JSON object, progress included (bytes, percent, rate, ETA as
// fields), for log pipelines that parse them.
func TestJSONLogs(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	band := make([]byte, 16<<10)
	_, _ = rand.Read(band)
	g.Expect(tw.WriteHeader(&tar.Header{Name: "band.tif", Typeflag: tar.TypeReg, Size: int64(len(band)), Mode: 0o644})).
		To(Succeed())
	_, _ = tw.Write(band)
	g.Expect(tw.Close()).To(Succeed())
	archive := buf.Bytes()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(archive)))
		for i := 0; i < len(archive); i += 1 << 10 {
			_, _ = w.Write(archive[i:min(i+1<<10, len(archive))])
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}))
	defer srv.Close()
	f := filepath.Join(t.TempDir(), "SIGNED_URL")
	g.Expect(os.WriteFile(f, []byte(srv.URL+"/p.tar\n"), 0o600)).To(Succeed())
	code, _, stderr := runBinary(t, nil, "--url-file", f, "--dest", filepath.Join(t.TempDir(), "data"),
		"--log-format=json", "--progress-interval=50ms")
	g.Expect(code).To(Equal(0), "%s", stderr)
	progress := 0
	for line := range strings.Lines(stderr) {
		var entry map[string]any
		g.Expect(json.Unmarshal([]byte(line), &entry)).To(Succeed(), "%s", line)
		if entry["msg"] == "Downloading" {
			g.Expect(entry).To(HaveKey("downloaded"))
			g.Expect(entry).To(HaveKey("percent"))
			g.Expect(entry).To(HaveKey("rate"))
			progress++
		}
	}
	g.Expect(progress).To(BeNumerically(">=", 2), "%s", stderr)
}
