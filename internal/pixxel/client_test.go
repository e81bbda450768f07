package pixxel_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

const apiKey = "pk_live_0123456789abcdef"

var task = pixxel.Task{WorkflowID: "wf-1", JobID: "job-2", TaskID: "task-3"}

func fakeTask(t pixxel.Task) fakepixxel.Task {
	return fakepixxel.Task{WorkflowID: t.WorkflowID, JobID: t.JobID, TaskID: t.TaskID}
}

func newClient(t *testing.T, baseURL string, opts ...pixxel.Option) *pixxel.Client {
	t.Helper()
	c, err := pixxel.New(baseURL, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestRequestDownloadSendsDocumentedRequest(t *testing.T) {
	g := NewWithT(t)
	srv := fakepixxel.New()
	defer srv.Close()
	srv.RequireAPIKey(apiKey)

	weird := pixxel.Task{WorkflowID: "wf 1?x=y", JobID: "job%2F2", TaskID: "täsk#3"}
	srv.Script(fakeTask(weird), fakepixxel.Ready("https://storage.example/p.zip?sig=abc"))

	d, err := newClient(t, srv.URL+"/").RequestDownload(context.Background(), apiKey, weird)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.State()).To(Equal(pixxel.StateReady))
	g.Expect(d.SignedURL).To(Equal("https://storage.example/p.zip?sig=abc"))

	reqs := srv.Requests()
	g.Expect(reqs).To(HaveLen(1))
	g.Expect(reqs[0].Method).To(Equal(http.MethodPut))
	g.Expect(reqs[0].Authorization).To(Equal(apiKey), "the raw key, no Bearer prefix")
	g.Expect(reqs[0].RawPath).To(Equal("/v0/workflows/wf%201%3Fx=y/jobs/job%252F2/tasks/t%C3%A4sk%233/download"))
	g.Expect(reqs[0].Task).To(Equal(fakeTask(weird)), "each ID arrives intact as one path segment")
}

// Many reconciles call the API at once; their connections must be reused rather than opened anew for
// most requests (each a TCP and TLS handshake against the real API).
func TestRequestDownloadReusesConnectionsUnderConcurrency(t *testing.T) {
	g := NewWithT(t)
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(5 * time.Millisecond) // keep requests overlapping
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":%q,"job_id":%q,"workflow_id":%q,"status":"pending","signed_url":""}`,
			task.TaskID, task.JobID, task.WorkflowID)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c := newClient(t, srv.URL)
	const workers, rounds = 64, 30
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				_, err := c.RequestDownload(context.Background(), apiKey, task)
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
	wg.Wait()
	g.Expect(opened.Load()).To(BeNumerically("<=", 2*workers),
		"%d requests from %d concurrent callers opened %d connections", workers*rounds, workers, opened.Load())
}

func TestRequestDownloadKeepsBasePath(t *testing.T) {
	g := NewWithT(t)
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.EscapedPath()
		_, _ = w.Write([]byte(`{"status":"pending"}`))
	}))
	defer srv.Close()

	_, err := newClient(t, srv.URL+"/proxy/pixxel/").RequestDownload(context.Background(), apiKey, task)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gotPath).To(Equal("/proxy/pixxel/v0/workflows/wf-1/jobs/job-2/tasks/task-3/download"))
}

func TestRequestDownloadDecodesStates(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   pixxel.State
	}{
		{"pending", pixxel.StatePending},
		{"processing", pixxel.StatePending},
		{"READY", pixxel.StateReady},
		{"Failed", pixxel.StateFailed},
		{"error", pixxel.StateFailed},
		{"cancelled", pixxel.StateFailed},
	} {
		t.Run(tc.status, func(t *testing.T) {
			g := NewWithT(t)
			srv := fakepixxel.New()
			defer srv.Close()
			srv.Script(fakeTask(task), fakepixxel.Response{Status: tc.status, SignedURL: "https://s.example/x"})
			d, err := newClient(t, srv.URL).RequestDownload(context.Background(), apiKey, task)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(d.Status).To(Equal(tc.status), "the raw status is kept")
			g.Expect(d.State()).To(Equal(tc.want))
			g.Expect(d.ID).To(Equal("task-3"))
			g.Expect(d.JobID).To(Equal("job-2"))
			g.Expect(d.WorkflowID).To(Equal("wf-1"))
		})
	}
}

func TestRequestDownloadErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resp       fakepixxel.Response
		wantStatus int
		wantCode   string
		wantMsg    string
		wantDetail string
		wantRetry  time.Duration
	}{
		{
			name:       "400 with documented body",
			resp:       fakepixxel.Response{HTTPStatus: 400, ErrorCode: "invalid_task", ErrorMessage: "task is not finished", ErrorDetails: map[string]any{"field": "task_id"}},
			wantStatus: 400, wantCode: "invalid_task", wantMsg: "task is not finished", wantDetail: `{"field":"task_id"}`,
		},
		{
			name:       "403 with string details",
			resp:       fakepixxel.Response{HTTPStatus: 403, ErrorCode: "forbidden", ErrorMessage: "no access", ErrorDetails: "workflow belongs to another org"},
			wantStatus: 403, wantCode: "forbidden", wantMsg: "no access", wantDetail: "workflow belongs to another org",
		},
		{
			name:       "429 with Retry-After seconds",
			resp:       fakepixxel.Response{HTTPStatus: 429, ErrorCode: "rate_limited", RetryAfter: "7"},
			wantStatus: 429, wantCode: "rate_limited", wantRetry: 7 * time.Second,
		},
		{
			name:       "502 with an HTML body",
			resp:       fakepixxel.Response{HTTPStatus: 502, Body: []byte("<html>bad gateway</html>")},
			wantStatus: 502,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := fakepixxel.New()
			defer srv.Close()
			srv.Script(fakeTask(task), tc.resp)
			_, err := newClient(t, srv.URL).RequestDownload(context.Background(), apiKey, task)
			var apiErr *pixxel.Error
			g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "got %v", err)
			g.Expect(apiErr.StatusCode).To(Equal(tc.wantStatus))
			g.Expect(apiErr.Code).To(Equal(tc.wantCode))
			g.Expect(apiErr.Message).To(Equal(tc.wantMsg))
			g.Expect(apiErr.Details).To(Equal(tc.wantDetail))
			g.Expect(apiErr.RetryAfter).To(Equal(tc.wantRetry))
			g.Expect(err.Error()).NotTo(ContainSubstring(apiKey))
		})
	}
}

func TestRequestDownloadRejectsInvalidAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp fakepixxel.Response
	}{
		{"malformed JSON", fakepixxel.Response{Body: []byte(`{"status":"ready","signed_url":"https://s.example/x?sig=SECRET`)}},
		{"ready without a URL", fakepixxel.Response{Status: "ready"}},
		{"relative URL", fakepixxel.Ready("/x.zip?sig=SECRET")},
		{"ftp URL", fakepixxel.Ready("ftp://s.example/x.zip?sig=SECRET")},
		{"other task", fakepixxel.Response{Status: "ready", SignedURL: "https://s.example/x?sig=SECRET", Answer: func(a *fakepixxel.Answer) { a.ID = "task-9" }}},
		{"other job", fakepixxel.Response{Status: "pending", Answer: func(a *fakepixxel.Answer) { a.JobID = "job-9" }}},
		// A URL that echoes the key would publish it to everyone who may read the target or status.
		{"key in the query", fakepixxel.Ready("https://s.example/x.zip?sig=SECRET&key=" + apiKey)},
		{"key in the path", fakepixxel.Ready("https://s.example/" + apiKey + "/x.zip?sig=SECRET")},
		{"part of the key", fakepixxel.Ready("https://s.example/x.zip?sig=SECRET&k=" + apiKey[3:15])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := fakepixxel.New()
			defer srv.Close()
			srv.Script(fakeTask(task), tc.resp)
			_, err := newClient(t, srv.URL).RequestDownload(context.Background(), apiKey, task)
			var invalid *pixxel.InvalidResponseError
			g.Expect(errors.As(err, &invalid)).To(BeTrue(), "got %v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring("SECRET"))
			g.Expect(err.Error()).NotTo(ContainSubstring(apiKey[3:15]))
		})
	}
}

func TestRequestDownloadCapsTheBody(t *testing.T) {
	g := NewWithT(t)
	srv := fakepixxel.New()
	defer srv.Close()
	big := `{"status":"pending","details":"` + strings.Repeat("x", pixxel.MaxBodyBytes) + `"}`
	srv.Script(fakeTask(task), fakepixxel.Response{Body: []byte(big)})

	_, err := newClient(t, srv.URL).RequestDownload(context.Background(), apiKey, task)
	var tooLarge *pixxel.BodyTooLargeError
	g.Expect(errors.As(err, &tooLarge)).To(BeTrue(), "got %v", err)
}

func TestRequestDownloadTimesOut(t *testing.T) {
	g := NewWithT(t)
	srv := fakepixxel.New()
	defer srv.Close()
	srv.Script(fakeTask(task), fakepixxel.Response{Status: "ready", Delay: 5 * time.Second})

	start := time.Now()
	_, err := newClient(t, srv.URL, pixxel.WithTimeout(100*time.Millisecond)).RequestDownload(context.Background(), apiKey, task)
	var transport *pixxel.TransportError
	g.Expect(errors.As(err, &transport)).To(BeTrue(), "got %v", err)
	g.Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue())
	g.Expect(time.Since(start)).To(BeNumerically("<", 4*time.Second), "the request must not wait for the slow answer")
}

func TestRequestDownloadSlowBodyTimesOut(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"status":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()

	_, err := newClient(t, srv.URL, pixxel.WithTimeout(200*time.Millisecond)).RequestDownload(context.Background(), apiKey, task)
	var transport *pixxel.TransportError
	g.Expect(errors.As(err, &transport)).To(BeTrue(), "got %v", err)
}

func TestRequestDownloadConnectionReset(t *testing.T) {
	g := NewWithT(t)
	srv := fakepixxel.New()
	defer srv.Close()
	srv.Script(fakeTask(task), fakepixxel.Response{Reset: true})

	_, err := newClient(t, srv.URL).RequestDownload(context.Background(), apiKey, task)
	var transport *pixxel.TransportError
	g.Expect(errors.As(err, &transport)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring(apiKey))
}

func TestNewRejectsBadBaseURLs(t *testing.T) {
	for _, raw := range []string{"", "api.pixxel.space", "ftp://api.pixxel.space", "https://user:pw@api.pixxel.space", "https://api.pixxel.space?x=1"} {
		t.Run(raw, func(t *testing.T) {
			_, err := pixxel.New(raw)
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999", 24 * time.Hour},
	} {
		NewWithT(t).Expect(pixxel.ParseRetryAfter(tc.in, now)).To(Equal(tc.want), "Retry-After %q", tc.in)
	}
}

func TestDecodeErrorTruncatesLongTexts(t *testing.T) {
	g := NewWithT(t)
	long := strings.Repeat("é", 1000) // 2000 bytes
	e := pixxel.DecodeError(400, []byte(`{"error":{"code":"c","message":"`+long+`"}}`))
	g.Expect(len(e.Message)).To(BeNumerically("<=", 1024))
	g.Expect(e.Message).To(HaveSuffix("…"))
	g.Expect(strings.HasPrefix(long, strings.TrimSuffix(e.Message, "…"))).To(BeTrue())
}
