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
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

// storage is an httptest stand-in for object storage serving one object behind signed URLs, as S3 and
// GCS do: it sends an ETag, honours Range (and If-Range unless ignoreIfRange), and can drop or stall
// the connection part way, refuse signatures, replace the object, and record requests.
type storage struct {
	*httptest.Server

	mu            sync.Mutex
	payload       []byte
	etag          string // "" sends no validator at all
	validSig      string
	ignoreIfRange bool
	dropAfter     int    // bytes to send before dropping the connection, on the next request only; 0 = never
	afterDrop     func() // called (under mu) once the dropped request ended
	stallAfter    int    // bytes to send before going silent, on every request; 0 = never
	pauseAt       int    // bytes to send before calling onPause (outside mu), on the first request only
	onPause       func()
	headers       http.Header // sent with every 200 and 206
	requests      []request
	stalled       chan struct{}
}

type request struct{ rng, ifRange, sig string }

func newStorage(t *testing.T, payload []byte) *storage {
	s := &storage{payload: payload, etag: `"v1"`, validSig: "good", stalled: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() { close(s.stalled); s.Close() })
	return s
}

func (s *storage) url(sig string) string {
	return s.URL + "/packages/task.bin?X-Amz-Signature=" + sig
}

// replace swaps the object, as a repackaged task behind a refreshed URL.
func (s *storage) replace(payload []byte, etag string) {
	s.payload, s.etag = payload, etag
}

func (s *storage) log() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.requests...)
}

func (s *storage) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sig := r.URL.Query().Get("X-Amz-Signature")
	s.requests = append(s.requests, request{r.Header.Get("Range"), r.Header.Get("If-Range"), sig})
	payload, etag, valid, drop, stall, pause, onPause := s.payload, s.etag, s.validSig, s.dropAfter, s.stallAfter,
		s.pauseAt, s.onPause
	s.dropAfter, s.pauseAt = 0, 0
	s.mu.Unlock()

	if sig != valid {
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", http.StatusForbidden)
		return
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	maps.Copy(w.Header(), s.headers)
	start := 0
	rng := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag && !s.ignoreIfRange {
		rng = "" // the object changed: RFC 9110 says send all of it
	}
	if rng != "" {
		start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(payload)-1, len(payload)))
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.WriteHeader(http.StatusOK)
	}
	body := payload[start:]
	switch {
	case pause > 0 && pause < len(body):
		_, _ = w.Write(body[:pause])
		w.(http.Flusher).Flush()
		onPause()
		_, _ = w.Write(body[pause:])
	case stall > 0 && stall < len(body):
		_, _ = w.Write(body[:stall])
		w.(http.Flusher).Flush()
		select { // silent, with the connection open, until the client gives up
		case <-r.Context().Done():
		case <-s.stalled:
		}
	case drop > 0 && drop < len(body):
		_, _ = w.Write(body[:drop])
		w.(http.Flusher).Flush()
		s.mu.Lock() // before the drop, so that the client's next request sees the change
		if s.afterDrop != nil {
			s.afterDrop()
		}
		s.mu.Unlock()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
	default:
		_, _ = w.Write(body)
	}
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

// serveURL publishes u in a fresh URL file and returns options reading it.
func serveURL(t *testing.T, u string) (fetch.Options, *logBuf) {
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	writeURL(t, urlFile, u)
	logs := &logBuf{}
	return options(t, urlFile, logs), logs
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

// tarGz builds a tar.gz of entries in order; contents holds regular files' bodies by name.
func tarGz(t testing.TB, entries []tar.Header, contents map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		h.Size = int64(len(contents[h.Name]))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(contents[h.Name]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func symlink(name, target string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}

func regular(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg} }

// fetchArchive serves archive and fetches it into a fresh destination, with opts applied first.
func fetchArchive(t *testing.T, archive []byte, opts ...func(*fetch.Options)) (fetch.Options, error) {
	s := newStorage(t, archive)
	o, _ := serveURL(t, s.url("good"))
	for _, opt := range opts {
		opt(&o)
	}
	return o, fetch.Run(context.Background(), o)
}

// tree lists what is under dir, as "path" for files and "path/" for directories and "path -> target"
// for links.
func tree(t *testing.T, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			out = append(out, rel)
		}
		return nil
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return out
}
