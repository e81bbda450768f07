package budget_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

const api = "https://api.example"

var t0 = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

// recorder is a budget.Metrics that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	rate     map[string]float64
	limited  map[string]int
	breaker  map[string]bool
	deferred map[string]int
	forgot   []string
}

func newRecorder() *recorder {
	return &recorder{rate: map[string]float64{}, limited: map[string]int{}, breaker: map[string]bool{}, deferred: map[string]int{}}
}

func (r *recorder) RateChanged(k string, v float64) { r.mu.Lock(); r.rate[k] = v; r.mu.Unlock() }
func (r *recorder) RateLimited(k string)            { r.mu.Lock(); r.limited[k]++; r.mu.Unlock() }
func (r *recorder) BreakerChanged(k string, o bool) { r.mu.Lock(); r.breaker[k] = o; r.mu.Unlock() }
func (r *recorder) Deferred(k, reason string)       { r.mu.Lock(); r.deferred[k+"/"+reason]++; r.mu.Unlock() }
func (r *recorder) Forget(k string)                 { r.mu.Lock(); r.forgot = append(r.forgot, k); r.mu.Unlock() }

// rateOfK returns the last rate reported for the key "k".
func (r *recorder) rateOfK() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rate[budget.KeyID("k")]
}

func newBudget(o budget.Options) (*budget.Budget, *clocktesting.FakeClock, *recorder) {
	clk := clocktesting.NewFakeClock(t0)
	m := newRecorder()
	o.Clock, o.Metrics = clk, m
	return budget.New(o), clk, m
}

// call admits one call with key and reports outcome for it; it returns Admit's error.
func call(g Gomega, b *budget.Budget, key string, outcome error) error {
	done, err := b.Admit(context.Background(), api, key)
	if err != nil {
		return err
	}
	g.Expect(done).NotTo(BeNil())
	done(outcome)
	return nil
}

func tooMany(retryAfter time.Duration) error {
	return &pixxel.Error{StatusCode: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: retryAfter}
}

func asAPIError(g Gomega, err error) *pixxel.Error {
	apiErr, ok := errors.AsType[*pixxel.Error](err)
	g.Expect(ok).To(BeTrue(), "a *pixxel.Error, got %v", err)
	return apiErr
}

func TestKeyIDHidesTheKey(t *testing.T) {
	g := NewWithT(t)
	id := budget.KeyID("pk_live_secret")
	g.Expect(id).To(HaveLen(12))
	g.Expect(id).NotTo(ContainSubstring("secret"))
	g.Expect(id).To(Equal(budget.KeyID("pk_live_secret")))
	g.Expect(id).NotTo(Equal(budget.KeyID("pk_live_other")))
}

func TestSlowStartGrowsFastAndStopsAtTheCeiling(t *testing.T) {
	g := NewWithT(t)
	b, _, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 1000, InitialRate: 10})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	g.Expect(m.rateOfK()).To(BeNumerically("~", 12, 0.01), "each success adds 2 calls/s in slow start")
	for range 100 {
		g.Expect(call(g, b, "k", nil)).To(Succeed())
	}
	g.Expect(m.rateOfK()).To(Equal(100.0), "never above --api-qps")
}

func TestKeysHaveSeparateBudgets(t *testing.T) {
	g := NewWithT(t)
	b, _, _ := newBudget(budget.Options{MaxRate: 5, MaxBurst: 2, MaxWait: time.Millisecond})
	g.Expect(call(g, b, "a", nil)).To(Succeed())
	g.Expect(call(g, b, "a", nil)).To(Succeed())
	err := call(g, b, "a", nil)
	g.Expect(asAPIError(g, err).StatusCode).To(Equal(http.StatusTooManyRequests), "key a's bucket is empty")
	g.Expect(asAPIError(g, err).RetryAfter).To(BeNumerically("~", 200*time.Millisecond, time.Millisecond))

	g.Expect(call(g, b, "b", nil)).To(Succeed(), "key b is not slowed by key a")
	g.Expect(call(g, b, "a", nil)).To(HaveOccurred())
	g.Expect(b.Len()).To(Equal(2))

	// The same key at another API URL is another budget.
	done, err := b.Admit(context.Background(), "https://other.example", "a")
	g.Expect(err).NotTo(HaveOccurred())
	done(nil)
}

func TestDeferredTurnsAreSpreadAtTheKeysRate(t *testing.T) {
	g := NewWithT(t)
	b, _, m := newBudget(budget.Options{MaxRate: 10, MaxBurst: 1, MaxWait: time.Millisecond})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	turns := make([]time.Duration, 0, 5)
	for range 5 {
		err := call(g, b, "k", nil)
		after, deferred := budget.Deferred(err)
		g.Expect(deferred).To(BeTrue(), "the controller can tell a deferral from the platform's 429")
		g.Expect(asAPIError(g, err).RetryAfter).To(Equal(after), "and one that cannot still waits as for a 429")
		turns = append(turns, after)
	}
	// One call every 100 ms: turns handed out at once come back one after the other, not together.
	for i := 1; i < len(turns); i++ {
		g.Expect(turns[i] - turns[i-1]).To(BeNumerically("~", 100*time.Millisecond, 2*time.Millisecond))
	}
	g.Expect(m.deferred[budget.KeyID("k")+"/"+budget.DeferredBudget]).To(Equal(5))
}

func TestCallerWaitsForANearTurn(t *testing.T) {
	g := NewWithT(t)
	b, clk, _ := newBudget(budget.Options{MaxRate: 10, MaxBurst: 1, MaxWait: time.Second})
	g.Expect(call(g, b, "k", nil)).To(Succeed())

	admitted := make(chan error, 1)
	go func() { admitted <- call(g, b, "k", nil) }()
	g.Consistently(admitted).WithTimeout(50 * time.Millisecond).ShouldNot(Receive())
	g.Eventually(clk.HasWaiters).Should(BeTrue())
	clk.Step(100 * time.Millisecond)
	g.Eventually(admitted).Should(Receive(BeNil()))
}

func TestRateLimitHalvesOncePerWindowAndGrowsBackAdditively(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 1000, InitialRate: 40, MaxWait: time.Millisecond})
	g.Expect(call(g, b, "k", nil)).To(Succeed()) // 42
	// Three calls in flight together are answered 429: the rate halves once, not three times.
	dones := make([]func(error), 0, 3)
	for range 3 {
		done, err := b.Admit(context.Background(), api, "k")
		g.Expect(err).NotTo(HaveOccurred())
		dones = append(dones, done)
	}
	for _, done := range dones {
		done(tooMany(0))
	}
	g.Expect(m.rateOfK()).To(Equal(21.0))
	g.Expect(m.limited[budget.KeyID("k")]).To(Equal(3))

	// Tokens saved before the 429 are gone; the bucket now holds one second at the new rate.
	g.Expect(asAPIError(g, call(g, b, "k", nil)).RetryAfter).To(BeNumerically(">", 0))
	clk.Step(time.Second)

	// Congestion avoidance: one second of calls at the rate (21 successes) adds about
	// max(1, 10 % of 42) = 4.2 calls/s, not 2 per call as in slow start.
	for range 21 {
		g.Expect(call(g, b, "k", nil)).To(Succeed())
	}
	g.Expect(m.rateOfK()).To(BeNumerically("~", 25, 0.5))

	// A new 429 halves again.
	clk.Step(time.Second)
	g.Expect(call(g, b, "k", tooMany(0))).To(Succeed())
	g.Expect(m.rateOfK()).To(BeNumerically("~", 12.5, 0.3))
}

func TestRetryAfterPausesEveryCallerOfTheKey(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	g.Expect(call(g, b, "k", tooMany(30*time.Second))).To(Succeed())

	clk.Step(10 * time.Second)
	err := call(g, b, "k", nil)
	apiErr := asAPIError(g, err)
	g.Expect(apiErr.StatusCode).To(Equal(http.StatusTooManyRequests))
	g.Expect(apiErr.Code).To(Equal("rate_limited"), "the platform's own answer")
	g.Expect(apiErr.RetryAfter).To(Equal(20*time.Second), "the time left, for the controller to requeue at")
	after, deferred := budget.Deferred(err)
	g.Expect(deferred).To(BeTrue())
	g.Expect(after).To(Equal(20 * time.Second))
	g.Expect(call(g, b, "other", nil)).To(Succeed(), "another key is not paused")
	g.Expect(m.deferred[budget.KeyID("k")+"/"+budget.DeferredPaused]).To(Equal(1))

	clk.Step(20 * time.Second)
	g.Expect(call(g, b, "k", nil)).To(Succeed())
}

func TestANewKeyIsTriedByOneCallFirst(t *testing.T) {
	g := NewWithT(t)
	b, _, _ := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, MaxWait: time.Hour})
	first, err := b.Admit(context.Background(), api, "k")
	g.Expect(err).NotTo(HaveOccurred())

	second := make(chan error, 1)
	go func() { second <- call(g, b, "k", nil) }()
	g.Consistently(second).WithTimeout(100*time.Millisecond).ShouldNot(Receive(), "waits for the first answer")

	first(&pixxel.Error{StatusCode: http.StatusUnauthorized, Code: "unauthorized"})
	var got error
	g.Eventually(second).Should(Receive(&got))
	g.Expect(asAPIError(g, got).StatusCode).To(Equal(http.StatusUnauthorized), "refused without a call")
}

func TestRefusedKeyIsProbedOncePerInterval(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Minute})
	forbidden := &pixxel.Error{StatusCode: http.StatusForbidden, Code: "forbidden", Message: "key revoked"}
	g.Expect(call(g, b, "k", forbidden)).To(Succeed())
	g.Expect(m.breaker[budget.KeyID("k")]).To(BeTrue())

	for range 10 {
		err := call(g, b, "k", nil)
		g.Expect(err).To(Equal(forbidden), "the same answer, without a call")
		g.Expect(err).NotTo(BeIdenticalTo(forbidden))
		_, deferred := budget.Deferred(err)
		g.Expect(deferred).To(BeFalse(), "a refused key is the object's state, not a deferral")
	}
	clk.Step(time.Minute)
	probe, err := b.Admit(context.Background(), api, "k")
	g.Expect(err).NotTo(HaveOccurred(), "one probe per interval")
	g.Expect(call(g, b, "k", nil)).To(Equal(forbidden), "only one probe at a time")
	probe(forbidden)
	g.Expect(call(g, b, "k", nil)).To(Equal(forbidden), "the probe was refused: wait another interval")

	clk.Step(time.Minute)
	g.Expect(call(g, b, "k", nil)).To(Succeed(), "the probe is accepted")
	g.Expect(m.breaker[budget.KeyID("k")]).To(BeFalse())
	g.Expect(call(g, b, "k", nil)).To(Succeed())
}

func TestProbeNotMadeIsHandedOn(t *testing.T) {
	g := NewWithT(t)
	b, clk, _ := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Minute})
	g.Expect(call(g, b, "k", &pixxel.Error{StatusCode: http.StatusUnauthorized})).To(Succeed())
	clk.Step(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	probe, err := b.Admit(ctx, api, "k")
	g.Expect(err).NotTo(HaveOccurred())
	probe(context.Canceled) // the call failed before any answer
	g.Expect(call(g, b, "k", nil)).To(Succeed(), "another caller probes")
}

func TestSecretChangeClosesTheBreaker(t *testing.T) {
	g := NewWithT(t)
	b, _, _ := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Hour})
	ctx := budget.WithSecretVersion(context.Background(), "team-a/pixxel", "1")
	done, err := b.Admit(ctx, api, "k")
	g.Expect(err).NotTo(HaveOccurred())
	done(&pixxel.Error{StatusCode: http.StatusForbidden})

	_, err = b.Admit(ctx, api, "k")
	g.Expect(err).To(HaveOccurred())
	done, err = b.Admit(budget.WithSecretVersion(context.Background(), "team-a/pixxel", "2"), api, "k")
	g.Expect(err).NotTo(HaveOccurred(), "the user changed the Secret: try the key again at once")
	done(nil)
}

// The same revoked key in two namespaces' Secrets, each at its own resourceVersion, once closed the
// breaker at every switch from one to the other: 71 calls in 15 s instead of one.
func TestSameKeyInTwoSecretsSharesOneBreaker(t *testing.T) {
	g := NewWithT(t)
	b, _, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Hour})
	inA := budget.WithSecretVersion(context.Background(), "team-a/pixxel", "100")
	inB := budget.WithSecretVersion(context.Background(), "team-b/pixxel", "207")
	done, err := b.Admit(inA, api, "k")
	g.Expect(err).NotTo(HaveOccurred())
	done(&pixxel.Error{StatusCode: http.StatusUnauthorized})
	g.Expect(m.breaker[budget.KeyID("k")]).To(BeTrue())
	for i := range 80 {
		ctx := inA
		if i%2 == 1 {
			ctx = inB
		}
		_, err := b.Admit(ctx, api, "k")
		g.Expect(err).To(HaveOccurred(), "call %d: refused without a call, whichever Secret the key came from", i)
	}
	g.Expect(m.breaker[budget.KeyID("k")]).To(BeTrue())
}

// Callers waiting for a new key's first answer once escaped MaxWaiters: 200 were each held for MaxWait.
func TestNewKeyWaitersCountAgainstMaxWaiters(t *testing.T) {
	g := NewWithT(t)
	const maxWaiters, callers = 32, 200
	b, clk, _ := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, MaxWaiters: maxWaiters, MaxWait: time.Second})
	first, err := b.Admit(context.Background(), api, "k")
	g.Expect(err).NotTo(HaveOccurred())

	results := make(chan error, callers)
	for range callers {
		go func() {
			done, err := b.Admit(context.Background(), api, "k")
			if err == nil {
				done(nil)
			}
			results <- err
		}()
	}
	var deferred int
	g.Eventually(func() int {
		for {
			select {
			case err := <-results:
				_, ok := budget.Deferred(err)
				g.Expect(ok).To(BeTrue(), "only the callers beyond MaxWaiters return at once, deferred: %v", err)
				deferred++
			default:
				return deferred
			}
		}
	}).Should(Equal(callers-maxWaiters), "callers beyond MaxWaiters are handed a later turn without waiting")
	g.Expect(clk.HasWaiters()).To(BeTrue())
	first(nil)
	for range maxWaiters {
		g.Eventually(results).Should(Receive(Succeed()), "the waiters go ahead once the key is accepted")
	}
}

// A Retry-After of a day was forgotten after the key had been idle for 15 minutes.
func TestRetryAfterIsRememberedUntilItEnds(t *testing.T) {
	g := NewWithT(t)
	b, clk, _ := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Minute, IdleTimeout: 5 * time.Minute})
	g.Expect(call(g, b, "k", tooMany(24*time.Hour))).To(Succeed())
	for _, idle := range []time.Duration{15 * time.Minute, 6 * time.Hour, 17*time.Hour + 44*time.Minute} {
		clk.Step(idle)
		g.Expect(call(g, b, "other", nil)).To(Succeed(), "another key's call runs the sweep")
		err := call(g, b, "k", nil)
		after, deferred := budget.Deferred(err)
		g.Expect(deferred).To(BeTrue(), "still paused after %s idle", idle)
		g.Expect(after).To(BeNumerically(">", 0))
	}
	clk.Step(time.Minute)
	g.Expect(call(g, b, "other", nil)).To(Succeed())
	g.Expect(call(g, b, "k", nil)).To(Succeed(), "the day is over")
}

func TestForbiddenForOneTaskDoesNotStopAKeyInUse(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Minute})
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	// The API answers 403 for a workflow the key may not access; the key works for the others.
	g.Expect(call(g, b, "k", &pixxel.Error{StatusCode: http.StatusForbidden})).To(Succeed())
	g.Expect(call(g, b, "k", nil)).To(Succeed())
	g.Expect(m.breaker[budget.KeyID("k")]).To(BeFalse())

	// A key refused with no success for a probe interval is stopped.
	clk.Step(time.Minute)
	g.Expect(call(g, b, "k", &pixxel.Error{StatusCode: http.StatusForbidden})).To(Succeed())
	g.Expect(call(g, b, "k", nil)).To(HaveOccurred())
	g.Expect(m.breaker[budget.KeyID("k")]).To(BeTrue())
}

func TestIdleKeysAreForgotten(t *testing.T) {
	g := NewWithT(t)
	b, clk, m := newBudget(budget.Options{MaxRate: 100, MaxBurst: 100, ProbeInterval: time.Minute, IdleTimeout: 5 * time.Minute})
	for _, k := range []string{"a", "b", "c"} {
		g.Expect(call(g, b, k, nil)).To(Succeed())
	}
	clk.Step(4 * time.Minute)
	g.Expect(call(g, b, "a", nil)).To(Succeed())
	clk.Step(2 * time.Minute)
	g.Expect(call(g, b, "a", nil)).To(Succeed())
	g.Expect(b.Len()).To(Equal(1), "b and c were idle for 6 minutes")
	g.Expect(m.forgot).To(ConsistOf(budget.KeyID("b"), budget.KeyID("c")))
}
