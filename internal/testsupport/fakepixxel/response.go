package fakepixxel

import (
	"net/http"
	"time"
)

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

// write sends a programmed answer to a task's request, noting when the task was first ready.
func (s *Server) write(w http.ResponseWriter, task Task, resp Response) {
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
