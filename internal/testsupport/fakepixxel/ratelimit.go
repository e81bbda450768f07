package fakepixxel

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// keyLimits enforces a per-API-key rate limit, as a platform limiting each key would: a token bucket
// of perSecond calls per second holding one second of calls.
type keyLimits struct {
	perSecond int
	buckets   map[string]*rate.Limiter
	limited   map[string]int
	answered  map[string]int
}

// SetKeyRateLimit makes the server accept at most perSecond calls per second from each API key (the
// Authorization header), with a burst of one second's calls; beyond it a call is answered 429
// rate_limited with Retry-After in whole seconds until the key's next call would be accepted (at
// least 1). A limited call does not advance its task's script. Zero turns the limit off.
func (s *Server) SetKeyRateLimit(perSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyLimits = keyLimits{perSecond: perSecond, buckets: map[string]*rate.Limiter{},
		limited: map[string]int{}, answered: map[string]int{}}
}

// KeyCalls returns how many calls the server received with an API key, and how many of them it
// answered 429 because of SetKeyRateLimit.
func (s *Server) KeyCalls(apiKey string) (calls, limited int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyLimits.answered[apiKey], s.keyLimits.limited[apiKey]
}

// limitKeyLocked counts a call with apiKey and, when the key is over its limit, returns the 429 to
// answer it with.
func (s *Server) limitKeyLocked(apiKey string, now time.Time) (Response, bool) {
	l := &s.keyLimits
	if l.perSecond <= 0 {
		return Response{}, false
	}
	l.answered[apiKey]++
	b, ok := l.buckets[apiKey]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.perSecond), l.perSecond)
		l.buckets[apiKey] = b
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait == 0 {
		return Response{}, false
	}
	r.CancelAt(now)
	l.limited[apiKey]++
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return Response{
		HTTPStatus: http.StatusTooManyRequests, ErrorCode: "rate_limited",
		ErrorMessage: "too many requests for this API key", RetryAfter: strconv.Itoa(secs),
	}, true
}
