package fakepixxel

import "time"

// SetReadyAfter makes an unscripted task answer pending until d has passed since its first call, and
// ready from then on, however often it is asked in between: the platform packages on its own clock,
// not the caller's. It replaces SetDefaultPending's count; zero restores it. A request counts from
// when it arrives, before the server's latency; one answered with a fault or 429 does not start the
// clock.
func (s *Server) SetReadyAfter(d time.Duration) { s.mu.Lock(); s.readyAfter = d; s.mu.Unlock() }

// FirstCall returns when a task's first answered request arrived, and false if it has had none since
// New or its last Script.
func (s *Server) FirstCall(t Task) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, ok := s.firstCall[t]
	return first, ok
}

// FirstReady returns when a task's first ready answer was sent (after the server's latency), and
// false if it has had none since New or its last Script.
func (s *Server) FirstReady(t Task) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.firstReady[t]
	return at, ok
}
