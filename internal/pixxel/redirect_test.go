package pixxel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// A redirect to the same host on another port (or scheme) is not followed: net/http would send the
// Authorization header along, handing the API key to whatever listens there.
func TestRedirectToAnotherOriginIsNotFollowed(t *testing.T) {
	g := NewWithT(t)
	var keySeen atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			keySeen.Add(1)
		}
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Same host name (127.0.0.1), another port; a token in the Location must not be printed.
		http.Redirect(w, r, other.URL+"/elsewhere?token=LOCATION_SECRET", http.StatusTemporaryRedirect)
	}))
	defer api.Close()

	_, err := newClient(t, api.URL).RequestDownload(context.Background(), apiKey, task)
	g.Expect(err).To(HaveOccurred())
	redirect, ok := errors.AsType[*pixxel.RedirectError](err)
	g.Expect(ok).To(BeTrue(), "got %T: %v", err, err)
	g.Expect(redirect.To).To(Equal(other.URL))
	g.Expect(err.Error()).To(ContainSubstring("not followed"))
	g.Expect(err.Error()).NotTo(ContainSubstring("LOCATION_SECRET"))
	g.Expect(keySeen.Load()).To(BeZero(), "the API key was sent to another origin")
}

func TestRedirectWithinTheOriginIsFollowed(t *testing.T) {
	g := NewWithT(t)
	var api *httptest.Server
	api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/moved") {
			http.Redirect(w, r, api.URL+"/moved"+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		g.Expect(r.Header.Get("Authorization")).To(Equal(apiKey))
		_, _ = fmt.Fprintf(w, `{"status":"pending"}`)
	}))
	defer api.Close()
	d, err := newClient(t, api.URL).RequestDownload(context.Background(), apiKey, task)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.State()).To(Equal(pixxel.StatePending))
}

// Whatever the platform echoes of the key, and control characters, never leave the client.
func TestPlatformTextsAreCleanAndRedacted(t *testing.T) {
	g := NewWithT(t)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ok") != "" || strings.Contains(r.URL.Path, "task-ok") {
			_, _ = fmt.Fprintf(w, `{"status":"pending \u001b[2J for %s"}`, r.Header.Get("Authorization"))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, `{"error":{"code":"forbidden","message":"key %s\nrevoked","details":{"hint":"…%s"}}}`,
			r.Header.Get("Authorization"), r.Header.Get("Authorization")[4:])
	}))
	defer api.Close()
	c := newClient(t, api.URL)

	_, err := c.RequestDownload(context.Background(), apiKey, task)
	apiErr, ok := errors.AsType[*pixxel.Error](err)
	g.Expect(ok).To(BeTrue())
	g.Expect(apiErr.Message).To(Equal("key [redacted]revoked"))
	g.Expect(apiErr.Details).To(Equal(`{"hint":"…[redacted]"}`))
	g.Expect(err.Error()).NotTo(ContainSubstring(apiKey[4:]))

	d, err := c.RequestDownload(context.Background(), apiKey, pixxel.Task{WorkflowID: "w", JobID: "j", TaskID: "task-ok"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Status).To(Equal("pending [2J for [redacted]"))
}
