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
