// Package fakepixxel is a programmable stand-in for the platform's task download endpoint, for tests,
// benchmarks and the demo. It behaves as the API document says: PUT
// /v0/workflows/{workflow_id}/jobs/{job_id}/tasks/{task_id}/download with the raw API key in the
// Authorization header, a 200 JSON answer {id, job_id, workflow_id, status, signed_url}, and errors as
// {"error":{"code","message","details"}}. Every request is recorded for assertions.
package fakepixxel

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Task names a task; it matches pixxel.Task without importing the client under test.
type Task struct {
	WorkflowID, JobID, TaskID string
}

// Response is one programmed answer. The zero value is a 200 "pending" answer.
type Response struct {
	// HTTPStatus is the status code; zero means 200.
	HTTPStatus int
	// Status and SignedURL fill a 200 answer.
	Status    string
	SignedURL string
	// ErrorCode, ErrorMessage and ErrorDetails fill a non-200 answer's documented error object.
	ErrorCode    string
	ErrorMessage string
	ErrorDetails any
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body, when set, is sent as is instead of the JSON above.
	Body []byte
	// Delay holds the answer back, on top of the server's latency.
	Delay time.Duration
	// Reset closes the connection without answering.
	Reset bool
	// Answer, when set, changes a 200 answer's fields before it is sent (to return other IDs, say).
	Answer func(*Answer)
}

// Answer is the JSON body of a 200 answer.
type Answer struct {
	ID         string `json:"id"`
	JobID      string `json:"job_id"`
	WorkflowID string `json:"workflow_id"`
	Status     string `json:"status"`
	SignedURL  string `json:"signed_url"`
}

// Pending is a 200 answer with status pending.
func Pending() Response { return Response{Status: "pending"} }

// Ready is a 200 answer with status ready and the given URL.
func Ready(signedURL string) Response { return Response{Status: "ready", SignedURL: signedURL} }

// Fail is an error answer with the documented error object.
func Fail(httpStatus int, code, message string) Response {
	return Response{HTTPStatus: httpStatus, ErrorCode: code, ErrorMessage: message}
}

// Request is what the server received.
type Request struct {
	Method        string
	RawPath       string
	Task          Task
	Authorization string
	Time          time.Time
}

// Server is the fake endpoint. Configure it before or while requests arrive; all methods are safe
// for concurrent use.
type Server struct {
	*httptest.Server

	mu             sync.Mutex
	apiKey         string
	latency        time.Duration
	defaultPending int
	readyAfter     time.Duration
	firstCall      map[Task]time.Time
	firstReady     map[Task]time.Time
	urlTTL         time.Duration
	packages       string
	now            func() time.Time
	scripts        map[Task][]Response
	calls          map[Task]int
	faultedCalls   map[Task]int
	totalCalls     int
	requests       []Request
	keepRequests   bool
	faultRate      float64
	faults         []Response
	limits         keyLimits
	revoked        map[string]bool
}

// New starts a server. Tasks without a script answer pending defaultPending times (or, after
// SetReadyAfter, until a set time has passed since their first call), then ready with a generated URL
// (see SignedURLFor). Close it when done.
func New() *Server {
	s := NewUnstarted()
	s.Start()
	return s
}

// NewUnstarted returns a server that is not listening yet: replace its Listener (to serve on another
// address than 127.0.0.1), then Start it.
func NewUnstarted() *Server {
	s := &Server{
		defaultPending: 1,
		urlTTL:         time.Hour,
		packages:       defaultPackages,
		now:            time.Now,
		scripts:        map[Task][]Response{},
		calls:          map[Task]int{},
		firstCall:      map[Task]time.Time{},
		firstReady:     map[Task]time.Time{},
		faultedCalls:   map[Task]int{},
		keepRequests:   true,
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	return s
}

// RequireAPIKey makes the server answer 403 to requests whose Authorization header is not key.
func (s *Server) RequireAPIKey(key string) { s.mu.Lock(); s.apiKey = key; s.mu.Unlock() }

// SetLatency delays every answer.
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// SetDefaultPending sets how many times an unscripted task answers pending before it is ready.
func (s *Server) SetDefaultPending(n int) { s.mu.Lock(); s.defaultPending = n; s.mu.Unlock() }

// SetURLTTL sets the lifetime written into generated URLs (X-Amz-Expires).
func (s *Server) SetURLTTL(d time.Duration) { s.mu.Lock(); s.urlTTL = d; s.mu.Unlock() }

// SetFaults makes a fraction rate (0 to 1) of all requests get one of faults, chosen at random, instead
// of their scripted answer; a faulted request does not advance the task's script.
func (s *Server) SetFaults(rate float64, faults ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultRate, s.faults = rate, faults
}

// KeepRequests turns recording of individual requests on or off (counts are always kept); benchmarks
// with many requests turn it off to keep memory flat.
func (s *Server) KeepRequests(on bool) { s.mu.Lock(); s.keepRequests = on; s.mu.Unlock() }

// Script programs a task's answers: the n-th request gets responses[n], and the last one repeats.
// It resets the task's call count.
func (s *Server) Script(t Task, responses ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[t] = responses
	s.calls[t] = 0
	delete(s.firstCall, t)
	delete(s.firstReady, t)
	s.faultedCalls[t] = 0
}

// Requests returns the recorded requests, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Calls returns how many requests a task received.
func (s *Server) Calls(t Task) int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls[t] }

// TotalCalls returns how many requests the server received for all tasks.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totalCalls
}

// SignedURLFor returns a fresh AWS SigV4-style signed URL for a task, valid for the server's URL TTL
// from now, with a random signature.
func (s *Server) SignedURLFor(t Task) string {
	s.mu.Lock()
	ttl, now, base := s.urlTTL, s.now(), s.packages
	s.mu.Unlock()
	return signedURL(base, t, now, ttl)
}

// defaultPackages is where generated URLs point unless SetPackages says otherwise: an address that
// is never dialled.
const defaultPackages = "https://storage.pixxel.example/packages/{w}/{j}/{t}.zip"

// SetPackages sets the template of the URLs generated answers carry: {w}, {j} and {t} become the
// path-escaped workflow, job and task IDs, and the signature parameters are appended. Point it at a
// storage server the test runs to have pods download from it.
func (s *Server) SetPackages(template string) { s.mu.Lock(); s.packages = template; s.mu.Unlock() }

// SignedURL builds an AWS SigV4-style presigned URL for a task's package, issued at issued and valid
// for ttl, with a random signature.
func SignedURL(t Task, issued time.Time, ttl time.Duration) string {
	return signedURL(defaultPackages, t, issued, ttl)
}

func signedURL(template string, t Task, issued time.Time, ttl time.Duration) string {
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	q := url.Values{}
	q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
	q.Set("X-Amz-Credential", "AKIAFAKE/"+issued.UTC().Format("20060102")+"/us-east-1/s3/aws4_request")
	q.Set("X-Amz-Date", issued.UTC().Format("20060102T150405Z"))
	q.Set("X-Amz-Expires", fmt.Sprint(int64(ttl/time.Second)))
	q.Set("X-Amz-SignedHeaders", "host")
	q.Set("X-Amz-Signature", hex.EncodeToString(sig))
	return strings.NewReplacer("{w}", url.PathEscape(t.WorkflowID), "{j}", url.PathEscape(t.JobID),
		"{t}", url.PathEscape(t.TaskID)).Replace(template) + "?" + q.Encode()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	task, ok := parsePath(r.URL.EscapedPath())
	if !ok || r.Method != http.MethodPut {
		writeJSON(w, http.StatusNotFound, errorBody("not_found", "no such route", nil))
		return
	}

	s.mu.Lock()
	n := s.calls[task]
	s.calls[task] = n + 1
	s.totalCalls++
	faulted := len(s.faults) > 0 && mathrand.Float64() < s.faultRate
	limited, retryAfter := s.overKeyLimitLocked(r.Header.Get("Authorization"))
	revoked := s.revoked[r.Header.Get("Authorization")]
	if faulted || limited || revoked {
		s.faultedCalls[task]++
	}
	if s.keepRequests {
		s.requests = append(s.requests, Request{
			Method: r.Method, RawPath: r.URL.EscapedPath(), Task: task,
			Authorization: r.Header.Get("Authorization"), Time: s.now(),
		})
	}
	wantKey, latency := s.apiKey, s.latency
	var resp Response
	switch {
	case revoked:
		resp = Fail(http.StatusForbidden, "forbidden", "the API key has been revoked")
	case limited:
		resp = rateLimited(retryAfter)
	case faulted:
		resp = s.faults[mathrand.IntN(len(s.faults))]
	default:
		resp = s.responseLocked(task, n-s.faultedCalls[task])
	}
	s.mu.Unlock()

	if d := latency + resp.Delay; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if wantKey != "" && r.Header.Get("Authorization") != wantKey {
		writeJSON(w, http.StatusForbidden, errorBody("forbidden", "the API key is not valid for this task", nil))
		return
	}
	if resp.Reset {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
	}
	if resp.RetryAfter != "" {
		w.Header().Set("Retry-After", resp.RetryAfter)
	}
	status := resp.HTTPStatus
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case resp.Body != nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(resp.Body)
	case status != http.StatusOK:
		writeJSON(w, status, errorBody(resp.ErrorCode, resp.ErrorMessage, resp.ErrorDetails))
	default:
		a := Answer{ID: task.TaskID, JobID: task.JobID, WorkflowID: task.WorkflowID, Status: resp.Status, SignedURL: resp.SignedURL}
		if resp.Answer != nil {
			resp.Answer(&a)
		}
		if a.Status == "ready" {
			s.mu.Lock()
			if _, ok := s.firstReady[task]; !ok {
				s.firstReady[task] = s.now()
			}
			s.mu.Unlock()
		}
		writeJSON(w, status, a)
	}
}

// responseLocked picks the answer to a task's n-th request (counting from 0).
func (s *Server) responseLocked(t Task, n int) Response {
	if _, ok := s.firstCall[t]; !ok {
		s.firstCall[t] = s.now()
	}
	if script, ok := s.scripts[t]; ok && len(script) > 0 {
		return script[min(n, len(script)-1)]
	}
	if s.readyAfter > 0 {
		if s.now().Sub(s.firstCall[t]) < s.readyAfter {
			return Pending()
		}
	} else if n < s.defaultPending {
		return Pending()
	}
	return Ready(SignedURL(t, s.now(), s.urlTTL))
}

// parsePath extracts the task from /v0/workflows/{w}/jobs/{j}/tasks/{t}/download, unescaping each segment.
func parsePath(p string) (Task, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 8 || parts[0] != "v0" || parts[1] != "workflows" || parts[3] != "jobs" ||
		parts[5] != "tasks" || parts[7] != "download" {
		return Task{}, false
	}
	var ids [3]string
	for i, raw := range []string{parts[2], parts[4], parts[6]} {
		id, err := url.PathUnescape(raw)
		if err != nil || id == "" {
			return Task{}, false
		}
		ids[i] = id
	}
	return Task{WorkflowID: ids[0], JobID: ids[1], TaskID: ids[2]}, true
}

func errorBody(code, message string, details any) any {
	return map[string]any{"error": map[string]any{"code": code, "message": message, "details": details}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
