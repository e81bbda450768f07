package fakepixxel

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// keyLimits answers 429 to the calls beyond a per-key rate, as a platform that enforces a quota per
// API key does.
type keyLimits struct {
	perSecond float64
	buckets   map[string]*tokenBucket
	limited   int
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// SetKeyLimit makes the server answer 429, with the documented error object and a Retry-After header
// in whole seconds, to each API key's calls beyond perSecond calls per second. Each key (Authorization
// header) has a bucket that holds one second's calls and refills continuously. A limited call counts in
// TotalCalls and Calls but does not advance the task's script. Zero, the default, removes the limit.
func (s *Server) SetKeyLimit(perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = keyLimits{perSecond: perSecond, buckets: map[string]*tokenBucket{}}
}

// RateLimitedCalls returns how many calls the key limit answered 429.
func (s *Server) RateLimitedCalls() int { s.mu.Lock(); defer s.mu.Unlock(); return s.limits.limited }

// overKeyLimitLocked takes a token from key's bucket; when there is none it counts the call as limited
// and returns how long until the next token.
func (s *Server) overKeyLimitLocked(key string) (bool, time.Duration) {
	l := &s.limits
	if l.perSecond <= 0 {
		return false, 0
	}
	now, capacity := s.now(), max(l.perSecond, 1)
	b, ok := l.buckets[key]
	if !ok {
		b = &tokenBucket{tokens: capacity, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(capacity, b.tokens+now.Sub(b.last).Seconds()*l.perSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return false, 0
	}
	l.limited++
	return true, time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
}

// rateLimited is the answer to a call over the key's limit.
func rateLimited(wait time.Duration) Response {
	return Response{
		HTTPStatus: http.StatusTooManyRequests, ErrorCode: "rate_limited",
		ErrorMessage: "too many requests for this API key",
		RetryAfter:   strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))),
	}
}

// RevokeKey makes the server answer 403 to every request made with apiKey, whatever the task, as the
// platform does for a revoked key; other keys are answered as before. Such a request does not advance
// the task's script.
func (s *Server) RevokeKey(apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked == nil {
		s.revoked = map[string]bool{}
	}
	s.revoked[apiKey] = true
}
