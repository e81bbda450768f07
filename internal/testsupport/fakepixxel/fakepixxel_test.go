package fakepixxel

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the server's s.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newWithClock(t *testing.T) (*Server, *fakeClock) {
	t.Helper()
	s := New()
	t.Cleanup(s.Close)
	clock := &fakeClock{t: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)}
	s.mu.Lock()
	s.now = clock.now
	s.mu.Unlock()
	return s, clock
}

// call makes one download request with key and returns the HTTP status, the answer's status field and
// the Retry-After header.
func call(t *testing.T, s *Server, task Task, key string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut,
		s.URL+"/v0/workflows/"+task.WorkflowID+"/jobs/"+task.JobID+"/tasks/"+task.TaskID+"/download", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", key)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var a Answer
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a.Status, resp.Header.Get("Retry-After")
}

func TestReadyAfterCountsFromTheFirstCall(t *testing.T) {
	s, clock := newWithClock(t)
	s.SetReadyAfter(6 * time.Second)
	a, b := Task{"w", "j", "a"}, Task{"w", "j", "b"}

	if _, ok := s.FirstCall(a); ok {
		t.Fatal("FirstCall before any call")
	}
	start := clock.now()
	for range 5 { // asking often does not make it ready sooner
		if _, status, _ := call(t, s, a, "k"); status != "pending" {
			t.Fatalf("a before 6s: %q, want pending", status)
		}
		clock.add(time.Second)
	}
	if first, _ := s.FirstCall(a); !first.Equal(start) {
		t.Fatalf("FirstCall(a) = %v, want %v", first, start)
	}
	if _, status, _ := call(t, s, b, "k"); status != "pending" { // b's clock starts now, at 5s
		t.Fatalf("b's first call: %q, want pending", status)
	}
	clock.add(999 * time.Millisecond)
	if _, status, _ := call(t, s, a, "k"); status != "pending" {
		t.Fatalf("a at 5.999s: %q, want pending", status)
	}
	if _, ok := s.FirstReady(a); ok {
		t.Fatal("FirstReady before a ready answer")
	}
	clock.add(time.Millisecond)
	readyAt := clock.now()
	if _, status, _ := call(t, s, a, "k"); status != "ready" {
		t.Fatalf("a at 6s: %q, want ready", status)
	}
	clock.add(time.Second)
	if _, status, _ := call(t, s, a, "k"); status != "ready" {
		t.Fatalf("a at 7s: %q, want ready", status)
	}
	if at, ok := s.FirstReady(a); !ok || !at.Equal(readyAt) {
		t.Fatalf("FirstReady(a) = %v, %v; want the first ready answer's time %v", at, ok, readyAt)
	}
	if _, status, _ := call(t, s, b, "k"); status != "pending" {
		t.Fatalf("b 1s after its first call: %q, want pending", status)
	}
}

func TestKeyLimitAnswers429PerKey(t *testing.T) {
	s, clock := newWithClock(t)
	s.SetDefaultPending(100)
	s.SetKeyLimit(5)
	task := Task{"w", "j", "t"}

	for i := range 5 { // a bucket holds one second's calls
		if code, _, _ := call(t, s, task, "busy"); code != http.StatusOK {
			t.Fatalf("call %d within the limit: %d", i, code)
		}
	}
	code, _, retryAfter := call(t, s, task, "busy")
	if code != http.StatusTooManyRequests || retryAfter != "1" {
		t.Fatalf("call over the limit: %d Retry-After %q, want 429 and 1", code, retryAfter)
	}
	if code, _, _ := call(t, s, task, "other"); code != http.StatusOK {
		t.Fatalf("another key: %d, want 200 (limits are per key)", code)
	}
	clock.add(200 * time.Millisecond) // one token back at 5 per second
	if code, _, _ := call(t, s, task, "busy"); code != http.StatusOK {
		t.Fatalf("after 200ms: %d, want 200", code)
	}
	if code, _, _ := call(t, s, task, "busy"); code != http.StatusTooManyRequests {
		t.Fatalf("second call after 200ms: %d, want 429", code)
	}
	if got, want := s.RateLimitedCalls(), 2; got != want {
		t.Fatalf("RateLimitedCalls = %d, want %d", got, want)
	}
	if got, want := s.TotalCalls(), 9; got != want {
		t.Fatalf("TotalCalls = %d, want %d (429s count as calls)", got, want)
	}

	// A limited call does not advance the task's script.
	scripted := Task{"w", "j", "scripted"}
	s.SetKeyLimit(1)
	s.Script(scripted, Pending(), Ready("https://storage.example/x"))
	if _, status, _ := call(t, s, scripted, "k"); status != "pending" {
		t.Fatalf("first scripted answer: %q", status)
	}
	if code, _, _ := call(t, s, scripted, "k"); code != http.StatusTooManyRequests {
		t.Fatalf("over the limit: %d", code)
	}
	clock.add(time.Second)
	if _, status, _ := call(t, s, scripted, "k"); status != "ready" {
		t.Fatalf("after the 429: %q, want the script's second answer, ready", status)
	}
}

func TestRevokedKeyIsRefusedOthersAreAnswered(t *testing.T) {
	s, _ := newWithClock(t)
	task := Task{"w", "j", "t"}
	s.Script(task, Pending(), Ready("https://storage.example/x"))
	s.RevokeKey("old")
	for range 3 {
		if code, _, _ := call(t, s, task, "old"); code != http.StatusForbidden {
			t.Fatalf("revoked key: %d, want 403", code)
		}
	}
	// The refused calls did not advance the script: the new key starts at its first answer.
	if _, status, _ := call(t, s, task, "new"); status != "pending" {
		t.Fatalf("new key's first call: %q, want pending", status)
	}
	if _, status, _ := call(t, s, task, "new"); status != "ready" {
		t.Fatalf("new key's second call: %q, want ready", status)
	}
}
