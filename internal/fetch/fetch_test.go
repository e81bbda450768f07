package fetch_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

// storage is an httptest stand-in for object storage serving one package behind signed URLs. It
// honours Range, and can drop the connection part way, refuse signatures, and record requests.
type storage struct {
	*httptest.Server
	payload []byte

	mu        sync.Mutex
	validSig  string
	dropAfter int // bytes to send before dropping the connection, on the next request only; 0 = never
	ranges    []string
	sigs      []string
}

func newStorage(t *testing.T, payload []byte) *storage {
	s := &storage{payload: payload, validSig: "good"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *storage) url(sig string) string {
	return s.URL + "/packages/task.bin?X-Amz-Signature=" + sig
}

func (s *storage) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sig := r.URL.Query().Get("X-Amz-Signature")
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.sigs = append(s.sigs, sig)
	valid, drop := s.validSig, s.dropAfter
	s.dropAfter = 0
	s.mu.Unlock()

	if sig != valid {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", http.StatusForbidden)
		return
	}
	start := 0
	if rng := r.Header.Get("Range"); rng != "" {
		v := strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-")
		start, _ = strconv.Atoi(v)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(s.payload)-1, len(s.payload)))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.payload)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.payload)))
		w.WriteHeader(http.StatusOK)
	}
	body := s.payload[start:]
	if drop > 0 && drop < len(body) {
		_, _ = w.Write(body[:drop])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	_, _ = w.Write(body)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func options(t *testing.T, urlFile string, logs *logBuf) fetch.Options {
	return fetch.Options{
		URLFile: urlFile, Dest: filepath.Join(t.TempDir(), "out"),
		WaitTimeout: 5 * time.Second, Retries: 3, RetryDelay: 10 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, ProgressInterval: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	}
}

func writeURL(t *testing.T, file, url string) {
	t.Helper()
	tmp := file + ".tmp"
	NewWithT(t).Expect(os.WriteFile(tmp, []byte(url+"\n"), 0o600)).To(Succeed())
	NewWithT(t).Expect(os.Rename(tmp, file)).To(Succeed())
}

func TestResumesAfterDroppedConnection(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(1 << 20)
	s := newStorage(t, payload)
	s.dropAfter = 300_000
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, s.url("good"))
	logs := &logBuf{}
	o := options(t, urlFile, logs)
	o.Extract = "none"

	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	got, err := os.ReadFile(filepath.Join(o.Dest, "task.bin"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Equal(got, payload)).To(BeTrue(), "the resumed file is identical")
	g.Expect(s.ranges).To(HaveLen(2))
	g.Expect(s.ranges[0]).To(BeEmpty())
	g.Expect(s.ranges[1]).To(Equal("bytes=300000-"), "the second request resumes where the first stopped")
	g.Expect(logs.String()).NotTo(ContainSubstring("X-Amz-Signature"), "no signature in logs")
	entries, _ := os.ReadDir(o.Dest)
	g.Expect(entries).To(HaveLen(1), "no temporary files left behind")
}

func TestExpiredURLIsReplacedFromTheFile(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(512 << 10)
	s := newStorage(t, payload)
	s.dropAfter = 100_000
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, s.url("old"))
	s.validSig = "old"
	logs := &logBuf{}
	o := options(t, urlFile, logs)
	o.Extract = "none"

	// After the first, dropped, request the old signature expires; the operator publishes a new URL a
	// little later.
	go func() {
		for {
			s.mu.Lock()
			n := len(s.sigs)
			if n >= 1 {
				s.validSig = "new"
			}
			s.mu.Unlock()
			if n >= 2 {
				time.Sleep(100 * time.Millisecond)
				writeURL(t, urlFile, s.url("new"))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	got, err := os.ReadFile(filepath.Join(o.Dest, "task.bin"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Equal(got, payload)).To(BeTrue())
	s.mu.Lock()
	defer s.mu.Unlock()
	g.Expect(s.sigs[len(s.sigs)-1]).To(Equal("new"))
	g.Expect(s.ranges[len(s.ranges)-1]).To(Equal("bytes=100000-"), "the new URL resumes the download")
	g.Expect(logs.String()).To(ContainSubstring("refused the URL"))
}

func TestWaitsForTheURLToAppear(t *testing.T) {
	g := NewWithT(t)
	payload := []byte("hello")
	s := newStorage(t, payload)
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	o := options(t, urlFile, &logBuf{})
	o.Extract = "none"
	o.OutputName = "hello.txt"
	time.AfterFunc(200*time.Millisecond, func() { writeURL(t, urlFile, s.url("good")) })
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "hello.txt"))).To(Equal(payload))
}

func TestTimesOutWithoutURL(t *testing.T) {
	g := NewWithT(t)
	o := options(t, filepath.Join(t.TempDir(), "SIGNED_URL"), &logBuf{})
	o.WaitTimeout = 100 * time.Millisecond
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("no URL appeared")))
}

func TestShortBodyFailsAfterRetries(t *testing.T) {
	g := NewWithT(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte("short"))
	}))
	defer srv.Close()
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, srv.URL+"/p.zip?sig=SECRET")
	o := options(t, urlFile, &logBuf{})
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("download failed after 4 attempts"))
	g.Expect(err.Error()).NotTo(ContainSubstring("SECRET"))
	g.Expect(calls.Load()).To(BeEquivalentTo(4))
}

func TestProgressIsLogged(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(256 << 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		for i := 0; i < len(payload); i += 32 << 10 {
			_, _ = w.Write(payload[i : i+32<<10])
			w.(http.Flusher).Flush()
			time.Sleep(15 * time.Millisecond)
		}
	}))
	defer srv.Close()
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, srv.URL+"/p.bin")
	logs := &logBuf{}
	o := options(t, urlFile, logs)
	o.Extract = "none"
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	out := logs.String()
	g.Expect(strings.Count(out, "msg=Downloading")).To(BeNumerically(">=", 3), out)
	g.Expect(out).To(MatchRegexp(`percent=\d+\.\d%`))
	g.Expect(out).To(ContainSubstring("percent=100.0%"))
	g.Expect(out).To(MatchRegexp(`rate="[\d.]+ (B|KiB|MiB)/s"`))
}

func zipArchive(t *testing.T, files map[string]string, symlinks map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		_, _ = w.Write([]byte(content))
	}
	for name, target := range symlinks {
		h := &zip.FileHeader{Name: name}
		h.SetMode(os.ModeSymlink | 0o777)
		w, err := zw.CreateHeader(h)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		_, _ = w.Write([]byte(target))
	}
	NewWithT(t).Expect(zw.Close()).To(Succeed())
	return buf.Bytes()
}

func tarGz(t *testing.T, entries []tar.Header, contents map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		h.Size = int64(len(contents[h.Name]))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		NewWithT(t).Expect(tw.WriteHeader(&h)).To(Succeed())
		_, _ = tw.Write([]byte(contents[h.Name]))
	}
	NewWithT(t).Expect(tw.Close()).To(Succeed())
	NewWithT(t).Expect(gz.Close()).To(Succeed())
	return buf.Bytes()
}

func fetchArchive(t *testing.T, archive []byte) (fetch.Options, error) {
	s := newStorage(t, archive)
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, s.url("good"))
	o := options(t, urlFile, &logBuf{})
	return o, fetch.Run(context.Background(), o)
}

func TestExtractsZipAndTarGz(t *testing.T) {
	g := NewWithT(t)
	o, err := fetchArchive(t, zipArchive(t, map[string]string{"scene/band1.tif": "B1", "scene/meta.json": "{}"},
		map[string]string{"scene/latest.tif": "band1.tif"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "band1.tif"))).To(Equal([]byte("B1")))
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "latest.tif"))).To(Equal([]byte("B1")), "symlinks inside the tree are kept")

	o, err = fetchArchive(t, tarGz(t, []tar.Header{
		{Name: "scene/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "scene/band2.tif", Typeflag: tar.TypeReg},
	}, map[string]string{"scene/band2.tif": "B2"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "band2.tif"))).To(Equal([]byte("B2")))
	entries, _ := os.ReadDir(o.Dest)
	g.Expect(entries).To(HaveLen(1), "only the extracted tree is left")
}

func TestRejectsEscapingArchives(t *testing.T) {
	for _, tc := range []struct {
		name    string
		archive func(t *testing.T) []byte
		want    string
	}{
		{"zip slip", func(t *testing.T) []byte {
			return zipArchive(t, map[string]string{"../../evil.sh": "boom"}, nil)
		}, "outside the destination"},
		{"zip absolute path", func(t *testing.T) []byte {
			return zipArchive(t, map[string]string{"/etc/evil": "boom"}, nil)
		}, "outside the destination"},
		{"zip symlink out", func(t *testing.T) []byte {
			return zipArchive(t, nil, map[string]string{"link": "../../../etc/passwd"})
		}, "symbolic link that leaves"},
		{"tar symlink then write through it", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{
				{Name: "dir", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
				{Name: "dir/evil", Typeflag: tar.TypeReg},
			}, map[string]string{"dir/evil": "boom"})
		}, "absolute path"},
		{"tar relative symlink escape", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{{Name: "a/link", Typeflag: tar.TypeSymlink, Linkname: "../../x"}}, nil)
		}, "symbolic link that leaves"},
		{"tar write through inner symlink", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{
				{Name: "inner", Typeflag: tar.TypeSymlink, Linkname: "sub"},
				{Name: "inner/evil", Typeflag: tar.TypeReg},
			}, map[string]string{"inner/evil": "boom"})
		}, "passes through a symbolic link"},
		{"tar hard link", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, nil)
		}, "hard links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			o, err := fetchArchive(t, tc.archive(t))
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			entries, _ := os.ReadDir(o.Dest)
			g.Expect(entries).To(BeEmpty(), "nothing of a rejected archive is left in the destination")
		})
	}
}

func TestSizeLimit(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, tarGz(t, []tar.Header{{Name: "big", Typeflag: tar.TypeReg}}, map[string]string{"big": strings.Repeat("x", 10000)}))
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, s.url("good"))
	o := options(t, urlFile, &logBuf{})
	o.MaxBytes = 5000
	g.Expect(fetch.Run(context.Background(), o)).To(MatchError(ContainSubstring("exceeds the limit")))
}
