package fetch

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// request builds the next request: a Range with If-Range when resuming, a conditional one
// (If-None-Match) when Dest holds what the same URL gave last time.
func (t *transfer) request(ctx context.Context, rawURL string) (*http.Request, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != schemeHTTPS) {
		return nil, false, &Error{ExitFailed,
			fmt.Errorf("invalid URL %s: only http and https are supported", signedurl.Redact(rawURL))}
	}
	if t.have > 0 && t.have == t.total && t.file != nil {
		// A previous run got everything and was stopped before it finished (during extraction). Asking
		// again for the last byte checks that the object is still the one on disk; "bytes=total-" would
		// only get a 416.
		t.have--
		if err := t.file.Truncate(t.have); err != nil {
			return nil, false, &Error{ExitFailed, err}
		}
	}
	if t.have > 0 {
		if v := t.validator(); v != "" {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", t.have))
			req.Header.Set("If-Range", v)
		} else {
			t.o.Log.Info("The storage gave no ETag or Last-Modified to check a resumed download against; starting over")
			if err := t.restart(); err != nil {
				return nil, false, &Error{ExitFailed, err}
			}
		}
	}
	conditional := t.have == 0 && t.previous != nil && urlWithoutQuery(rawURL) == t.previous.URL
	switch {
	case conditional && t.previous.ETag != "":
		req.Header.Set("If-None-Match", t.previous.ETag)
	case conditional && t.previous.LastModified != "":
		req.Header.Set("If-Modified-Since", t.previous.LastModified)
	default:
		conditional = false
	}
	return req, conditional, nil
}

// validator is the If-Range value: a strong ETag, else Last-Modified; empty when the object has neither
// and cannot be resumed safely.
func (t *transfer) validator() string {
	if t.etag != "" && !strings.HasPrefix(t.etag, "W/") {
		return t.etag
	}
	return t.lastModified
}

// sameObject reports whether a 206 comes from the object the file's bytes came from.
func (t *transfer) sameObject(h http.Header, size int64) bool {
	if t.total >= 0 && size != t.total {
		return false
	}
	if t.etag != "" && !strings.HasPrefix(t.etag, "W/") {
		return h.Get("ETag") == t.etag
	}
	return t.lastModified != "" && h.Get("Last-Modified") == t.lastModified
}
