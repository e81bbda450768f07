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
