// Package fakepixxel is a programmable stand-in for the platform's task download endpoint, for tests,
// benchmarks and the demo. It behaves as the API document says: PUT
// /v0/workflows/{workflow_id}/jobs/{job_id}/tasks/{task_id}/download with the raw API key in the
// Authorization header, a 200 JSON answer {id, job_id, workflow_id, status, signed_url}, and errors as
// {"error":{"code","message","details"}}. Every request is recorded for assertions.
package fakepixxel

import (
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Task names a task; it matches pixxel.Task without importing the client under test.
type Task struct {
	WorkflowID, JobID, TaskID string
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

// serve answers one request: 404 off the endpoint, else the answer receive picks, after the latency,
// unless the server requires another key.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	task, ok := parsePath(r.URL.EscapedPath())
	if !ok || r.Method != http.MethodPut {
		writeJSON(w, http.StatusNotFound, errorBody("not_found", "no such route", nil))
		return
	}
	resp, wantKey, latency := s.receive(r, task)
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
	if resp.Reset && resetConnection(w) {
		return
	}
	s.write(w, task, resp)
}

// receive counts and records a request, and picks its answer: the key's revocation or limit, a fault,
// or else the task's script. It also returns the key the server requires and its latency, as they are
// when the request arrives.
func (s *Server) receive(r *http.Request, task Task) (resp Response, wantKey string, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	return resp, s.apiKey, s.latency
}
