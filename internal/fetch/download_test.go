package fetch_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
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

func TestResumesAfterDroppedConnection(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(1 << 20)
	s := newStorage(t, payload)
	s.dropAfter = 300_000
	o, logs := serveURL(t, s.url("good"))
	o.Extract = "none"

	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	got, err := os.ReadFile(filepath.Join(o.Dest, "task.bin"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Equal(got, payload)).To(BeTrue(), "the resumed file is identical")
	reqs := s.log()
	g.Expect(reqs).To(HaveLen(2))
	g.Expect(reqs[0].rng).To(BeEmpty())
	g.Expect(reqs[1]).To(Equal(request{"bytes=300000-", `"v1"`, "good"}),
		"the second request resumes where the first stopped, only if the object is still the same")
	g.Expect(logs.String()).NotTo(ContainSubstring("X-Amz-Signature"), "no signature in logs")
	g.Expect(tree(t, o.Dest)).To(ConsistOf("task.bin", ".taskdownload.json"), "no temporary files left behind")
}

// A download interrupted at 409,600 bytes and resumed through a refreshed URL that now serves a
// repackaged task must give the new object, never the old one's start followed by the new one's end.
func TestResumeAfterTheObjectChangedStartsOver(t *testing.T) {
	for _, tc := range []struct {
		name          string
		ignoreIfRange bool
	}{
		{"storage honours If-Range", false},
		{"storage ignores If-Range and sends a 206 of the new object", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			old, repackaged := randomBytes(1<<20), randomBytes(900_000)
			s := newStorage(t, old)
			s.ignoreIfRange = tc.ignoreIfRange
			s.dropAfter = 409_600
			s.afterDrop = func() { s.replace(repackaged, `"v2"`) }
			o, _ := serveURL(t, s.url("good"))
			o.Extract = "none"

			g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
			got, err := os.ReadFile(filepath.Join(o.Dest, "task.bin"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(HaveLen(len(repackaged)))
			g.Expect(bytes.Equal(got, repackaged)).To(BeTrue(), "exactly the new object")
			reqs := s.log()
			g.Expect(reqs[1].ifRange).To(Equal(`"v1"`), "the resume names the object it continues")
			if tc.ignoreIfRange {
				g.Expect(reqs[len(reqs)-1].rng).To(BeEmpty(), "the 206's ETag differs: the new object is fetched from its start")
			} else {
				g.Expect(reqs).To(HaveLen(2), "the storage sent the whole new object in answer to the resume")
			}
		})
	}
}

func TestWithoutValidatorAResumeStartsOver(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(512 << 10)
	s := newStorage(t, payload)
	s.etag = ""
	s.dropAfter = 100_000
	o, _ := serveURL(t, s.url("good"))
	o.Extract = "none"
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "task.bin"))).To(Equal(payload))
	for _, r := range s.log() {
		g.Expect(r.rng).To(BeEmpty(), "nothing tells that a resumed response continues the same object")
	}
}

func TestExpiredURLIsReplacedFromTheFile(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(512 << 10)
	s := newStorage(t, payload)
	s.dropAfter = 100_000
	s.validSig = "old"
	o, logs := serveURL(t, s.url("old"))
	o.Extract = "none"
	// The old signature expires with the first, dropped, request; the operator publishes a new URL a
	// little later.
	s.afterDrop = func() {
		s.validSig = "new"
		time.AfterFunc(100*time.Millisecond, func() { writeURL(t, o.URLFile, s.url("new")) })
	}

	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "task.bin"))).To(Equal(payload))
	reqs := s.log()
	g.Expect(reqs[len(reqs)-1]).To(Equal(request{"bytes=100000-", `"v1"`, "new"}), "the new URL resumes the download")
	g.Expect(logs.String()).To(ContainSubstring("refused the URL"))
}

func TestWaitsForTheURLToAppear(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, []byte("hello"))
	urlFile := filepath.Join(t.TempDir(), "SIGNED_URL")
	o := options(t, urlFile, &logBuf{})
	o.Extract = "none"
	o.OutputName = "hello.txt"
	time.AfterFunc(200*time.Millisecond, func() { writeURL(t, urlFile, s.url("good")) })
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "hello.txt"))).To(Equal([]byte("hello")))
}

func TestNoURLExits3(t *testing.T) {
	g := NewWithT(t)
	o := options(t, filepath.Join(t.TempDir(), "SIGNED_URL"), &logBuf{})
	o.WaitTimeout = 100 * time.Millisecond
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("no URL appeared")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitNoURL))
}

// An environment variable cannot change in a running process: waiting for it is waiting for nothing.
func TestEmptyURLEnvFailsAtOnce(t *testing.T) {
	g := NewWithT(t)
	t.Setenv("FETCH_TEST_EMPTY_URL", "")
	o := options(t, "", &logBuf{})
	o.URLEnv = "FETCH_TEST_EMPTY_URL"
	o.WaitTimeout = time.Hour
	start := time.Now()
	err := fetch.Run(context.Background(), o)
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitNoURL), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("$FETCH_TEST_EMPTY_URL is empty"))
	g.Expect(time.Since(start)).To(BeNumerically("<", 30*time.Second), "no wait for --wait-timeout")
}

func TestRefusedURLWithoutANewOneExits4(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, []byte("data"))
	s.validSig = "other"
	o, _ := serveURL(t, s.url("expired"))
	o.WaitTimeout = 200 * time.Millisecond
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("refused the URL (403) and no new URL appeared")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed))
}

// A server that sends headers and 600 bytes and then nothing must not hang fetch: each attempt ends
// after --idle-timeout, resumes from byte 600, and after the retries fetch exits 4.
func TestStalledTransferFailsAfterRetries(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, randomBytes(5000))
	s.stallAfter = 600 // past the first 512 bytes, which tell the format
	o, logs := serveURL(t, s.url("good"))
	o.IdleTimeout = 500 * time.Millisecond // long enough for a loaded machine to read the 10 bytes
	o.Retries = 2

	done := make(chan error, 1)
	go func() { done <- fetch.Run(context.Background(), o) }()
	var err error
	g.Eventually(done, 60*time.Second).Should(Receive(&err), "fetch does not hang")
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("download failed after 3 attempts"))
	g.Expect(err.Error()).To(ContainSubstring("stalled"))
	reqs := s.log()
	g.Expect(reqs).To(HaveLen(3))
	g.Expect(reqs[1].rng).To(Equal("bytes=600-"), "a stalled attempt is retried from where it stopped")
	g.Expect(logs.String()).To(ContainSubstring("Retrying download"))
}

func TestSilentServerEndsTheAttempt(t *testing.T) {
	g := NewWithT(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	o, _ := serveURL(t, srv.URL+"/p.tar")
	o.ResponseHeaderTimeout = 100 * time.Millisecond
	o.Retries = 1
	err := fetch.Run(context.Background(), o)
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("timeout awaiting response headers"))
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
	o, _ := serveURL(t, srv.URL+"/p.zip?sig=SECRET")
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("download failed after 4 attempts")))
	g.Expect(err.Error()).NotTo(ContainSubstring("SECRET"))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed))
	g.Expect(calls.Load()).To(BeEquivalentTo(4))
}

func TestRetryAfterIsHonoured(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		first := len(arrivals) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
				http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("data"))
	}))
	defer srv.Close()
	o, logs := serveURL(t, srv.URL+"/p.bin")
	o.Extract = "none"
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	mu.Lock()
	defer mu.Unlock()
	g.Expect(arrivals).To(HaveLen(2))
	g.Expect(arrivals[1].Sub(arrivals[0])).To(BeNumerically(">=", time.Second), "not before Retry-After")
	g.Expect(logs.String()).To(ContainSubstring("SlowDown: Please reduce your request rate."))
}

func TestNotFoundIsNotRetried(t *testing.T) {
	g := NewWithT(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>", http.StatusNotFound)
	}))
	defer srv.Close()
	o, _ := serveURL(t, srv.URL+"/p.zip")
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("404 Not Found: NoSuchKey: The specified key does not exist.")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed))
	g.Expect(calls.Load()).To(BeEquivalentTo(1))
}

func TestRedirectFromHTTPSToHTTPIsRefused(t *testing.T) {
	g := NewWithT(t)
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/p.tar?X-Amz-Signature=SECRET", http.StatusFound))
	defer secure.Close()
	o, _ := serveURL(t, secure.URL+"/p.tar?X-Amz-Signature=SECRET")
	o.HTTPClient = secure.Client()
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("refusing to follow a redirect from https to http")))
	g.Expect(err.Error()).NotTo(ContainSubstring("SECRET"))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed))
	g.Expect(plainHits.Load()).To(BeZero(), "nothing was sent in clear text")
}

func TestErrorsHideCredentialsAndControlCharacters(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	closed := l.Addr().String()
	_ = l.Close()
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<Error><Code>Internal\x1b[31mError</Code><Message>line one\nforged=line\x1b]0;title\x07</Message>"+
			"<StringToSign>X-Amz-Signature=SECRET</StringToSign></Error>", http.StatusInternalServerError)
	}))
	defer hostile.Close()

	for name, u := range map[string]string{
		"connection refused": "http://user:password@" + closed + "/p.tar?X-Amz-Signature=SECRET",
		"hostile storage":    "http://user:password@" + strings.TrimPrefix(hostile.URL, "http://") + "/p.tar?X-Amz-Signature=SECRET",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			o, logs := serveURL(t, u)
			o.Retries = 1
			err := fetch.Run(context.Background(), o)
			g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
			for _, out := range []string{err.Error(), logs.String()} {
				g.Expect(out).NotTo(ContainSubstring("password"))
				g.Expect(out).NotTo(ContainSubstring("SECRET"))
				g.Expect(out).NotTo(ContainSubstring("\x1b"))
				g.Expect(out).NotTo(ContainSubstring("\x07"))
			}
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
		})
	}
}

func TestProgressIsLoggedForHumans(t *testing.T) {
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
	o, logs := serveURL(t, srv.URL+"/p.bin")
	o.Extract = "none"
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	out := logs.String()
	g.Expect(strings.Count(out, "msg=Downloading")).To(BeNumerically(">=", 3), out)
	g.Expect(out).To(MatchRegexp(`msg=Downloading downloaded="[\d.]+ KiB" total="256.0 KiB" percent=\d+\.\d% rate="[\d.]+ (B|KiB|MiB)/s" eta=\d`))
	g.Expect(out).To(ContainSubstring(`downloaded="256.0 KiB" total="256.0 KiB" percent=100.0%`))
}

func TestSavedFileIsReadableByOthers(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, []byte("data"))
	o, _ := serveURL(t, s.url("good"))
	o.Extract = "none"
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	info, err := os.Stat(filepath.Join(o.Dest, "task.bin"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o644)))
}

func TestDownloadOverMaxBytesIsRefused(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, randomBytes(10_000))
	o, _ := serveURL(t, s.url("good"))
	o.MaxBytes = 5000
	err := fetch.Run(context.Background(), o)
	g.Expect(err).To(MatchError(ContainSubstring("more than --max-bytes")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
}

func TestLeftoversOfAKilledRunAreRemoved(t *testing.T) {
	g := NewWithT(t)
	s := newStorage(t, []byte("data"))
	o, _ := serveURL(t, s.url("good"))
	o.Extract = "none"
	g.Expect(os.MkdirAll(filepath.Join(o.Dest, ".fetch-extract-123", "scene"), 0o755)).To(Succeed())
	// A partial download without the state that says which object it came from cannot be resumed.
	g.Expect(os.WriteFile(filepath.Join(o.Dest, ".fetch-download.partial"), randomBytes(3), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(o.Dest, "keep.txt"), nil, 0o600)).To(Succeed())
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(tree(t, o.Dest)).To(ConsistOf("keep.txt", "task.bin", ".taskdownload.json"))
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "task.bin"))).To(Equal([]byte("data")))
	g.Expect(s.log()[0].rng).To(BeEmpty())
}

// The kubelet restarts a failed init container in the same pod (restartPolicy OnFailure) with the same
// emptyDir: the next run resumes the download, only if the object is the same.
func TestResumesTheDownloadOfAPreviousRun(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("object changed: %v", changed), func(t *testing.T) {
			g := NewWithT(t)
			payload, repackaged := randomBytes(1<<20), randomBytes(700_000)
			s := newStorage(t, payload)
			s.dropAfter = 300_000
			o, _ := serveURL(t, s.url("good"))
			o.Extract = "none"
			o.Retries = 0
			err := fetch.Run(context.Background(), o)
			g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
			g.Expect(tree(t, o.Dest)).To(ConsistOf(".fetch-download.partial", ".fetch-download.json"))

			want := payload
			if changed {
				s.mu.Lock()
				s.replace(repackaged, `"v2"`)
				s.mu.Unlock()
				want = repackaged
			}
			g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
			g.Expect(tree(t, o.Dest)).To(ConsistOf("task.bin", ".taskdownload.json"))
			got, err := os.ReadFile(filepath.Join(o.Dest, "task.bin"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(bytes.Equal(got, want)).To(BeTrue(), "exactly one object")
			g.Expect(s.log()[1]).To(Equal(request{"bytes=300000-", `"v1"`, "good"}))
		})
	}
}

// A run killed while extracting leaves a complete download: the next run checks it with one byte.
func TestCompleteDownloadOfAPreviousRunIsChecked(t *testing.T) {
	g := NewWithT(t)
	payload := randomBytes(100_000)
	s := newStorage(t, payload)
	o, _ := serveURL(t, s.url("good"))
	o.Extract = "none"
	g.Expect(os.MkdirAll(o.Dest, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(o.Dest, ".fetch-download.partial"), payload, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(o.Dest, ".fetch-download.json"),
		[]byte(`{"etag":"\"v1\"","total":100000}`), 0o600)).To(Succeed())
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "task.bin"))).To(Equal(payload))
	g.Expect(s.log()).To(Equal([]request{{"bytes=99999-", `"v1"`, "good"}}))
}
