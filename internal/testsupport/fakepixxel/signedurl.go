package fakepixxel

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// SignedURLFor returns a fresh AWS SigV4-style signed URL for a task, valid for the server's URL TTL
// from now, with a random signature.
func (s *Server) SignedURLFor(t Task) string {
	s.mu.Lock()
	ttl, now, base := s.urlTTL, s.now(), s.packages
	s.mu.Unlock()
	return signedURL(base, t, now, ttl)
}

// defaultPackages is where generated URLs point unless SetPackages says otherwise: an address that
// is never dialled.
const defaultPackages = "https://storage.pixxel.example/packages/{w}/{j}/{t}.zip"

// SetPackages sets the template of the URLs generated answers carry: {w}, {j} and {t} become the
// path-escaped workflow, job and task IDs, and the signature parameters are appended. Point it at a
// storage server the test runs to have pods download from it.
func (s *Server) SetPackages(template string) { s.mu.Lock(); s.packages = template; s.mu.Unlock() }

// SignedURL builds an AWS SigV4-style presigned URL for a task's package, issued at issued and valid
// for ttl, with a random signature.
func SignedURL(t Task, issued time.Time, ttl time.Duration) string {
	return signedURL(defaultPackages, t, issued, ttl)
}

func signedURL(template string, t Task, issued time.Time, ttl time.Duration) string {
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	q := url.Values{}
	q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
	q.Set("X-Amz-Credential", "AKIAFAKE/"+issued.UTC().Format("20060102")+"/us-east-1/s3/aws4_request")
	q.Set("X-Amz-Date", issued.UTC().Format("20060102T150405Z"))
	q.Set("X-Amz-Expires", fmt.Sprint(int64(ttl/time.Second)))
	q.Set("X-Amz-SignedHeaders", "host")
	q.Set("X-Amz-Signature", hex.EncodeToString(sig))
	return strings.NewReplacer("{w}", url.PathEscape(t.WorkflowID), "{j}", url.PathEscape(t.JobID),
		"{t}", url.PathEscape(t.TaskID)).Replace(template) + "?" + q.Encode()
}
