package budget_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/budget"
	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

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
