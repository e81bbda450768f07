package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// transfer is one download across attempts: what the file holds, and which object it came from.
type transfer struct {
	o    Options
	f    *os.File
	have int64
	// total is the object's size, -1 when unknown.
	total int64
	// etag and lastModified identify the object the bytes in f came from; a resumed response must carry
	// the same one, or the file would hold the start of one object and the end of another.
	etag, lastModified string
}

// download writes the package into t's file, retrying and resuming, and returns the URL it came from.
func (t *transfer) download(ctx context.Context, rawURL string) (string, error) {
	o := t.o
	backoff := retryBackoff(o)
	failures := 0
	for {
		err := t.attempt(ctx, rawURL)
		if err == nil {
			return rawURL, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if e, ok := errors.AsType[*refusedURLError](err); ok {
			// A refreshed URL is not a failed attempt: the operator renews URLs before they expire.
			if rawURL, err = waitForNewURL(ctx, o, rawURL, e.status); err != nil {
				return "", err
			}
			continue
		}
		if _, ok := errors.AsType[*Error](err); ok {
			return "", err
		}
		if _, ok := errors.AsType[*permanentError](err); ok {
			return "", downloadFailed(err)
		}
		failures++
		if failures > o.Retries {
			return "", downloadFailed(fmt.Errorf("download failed after %d attempts: %w", failures, err))
		}
		delay := backoff.Step()
		if e, ok := errors.AsType[*slowDownError](err); ok && e.after > delay {
			delay = min(e.after, o.RetryMaxDelay) // S3's SlowDown, GCS's 429: as asked, within the cap
		}
		o.Log.Info("Retrying download", "attempt", failures+1, "of", o.Retries+1, "in", delay.Round(time.Millisecond),
			"resumeAt", humanBytes(float64(t.have)), "error", err)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", ctx.Err()
		case <-timer.C:
		}
		// A URL the operator refreshed meanwhile is used at once.
		if u, err := readURL(o); err == nil && u != "" {
			rawURL = u
		}
	}
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

// attempt makes one request, resuming after what the file holds when the object can be identified.
func (t *transfer) attempt(parent context.Context, rawURL string) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != schemeHTTPS) {
		return &Error{ExitFailed, fmt.Errorf("invalid URL %s: only http and https are supported", signedurl.Redact(rawURL))}
	}
	if t.have > 0 && t.have == t.total {
		// A previous run got everything and was stopped before it finished (during extraction). Asking
		// again for the last byte checks that the object is still the one on disk; "bytes=total-" would
		// only get a 416.
		t.have--
		if err := t.f.Truncate(t.have); err != nil {
			return &Error{ExitFailed, err}
		}
	}
	if t.have > 0 {
		if v := t.validator(); v != "" {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", t.have))
			req.Header.Set("If-Range", v)
		} else {
			t.o.Log.Info("The storage gave no ETag or Last-Modified to check a resumed download against; starting over")
			if err := t.restart(); err != nil {
				return &Error{ExitFailed, err}
			}
		}
	}
	resp, err := t.o.HTTPClient.Do(req)
	if err != nil {
		if p, ok := errors.AsType[*permanentError](err); ok {
			return p
		}
		return signedurl.StripURLError(err) // names the redacted URL: Get "https://host/key": cause
	}
	defer func() { _ = resp.Body.Close() }()

	switch resp.StatusCode {
	case http.StatusOK:
		if t.have > 0 {
			t.o.Log.Info("The object changed or the storage does not resume; starting over")
		}
		if err := t.restart(); err != nil {
			return &Error{ExitFailed, err}
		}
		t.total, t.etag, t.lastModified = resp.ContentLength, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		if err := t.saveState(); err != nil {
			return &Error{ExitFailed, fmt.Errorf("saving the download's state: %w", err)}
		}
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != t.have {
			return fmt.Errorf("the storage answered an unexpected range %q",
				signedurl.CleanText(resp.Header.Get("Content-Range")))
		}
		if !t.sameObject(resp.Header, size) {
			t.o.Log.Info("The object changed since the download began; starting over")
			if err := t.restart(); err != nil {
				return &Error{ExitFailed, err}
			}
			return errors.New("the object changed since the download began")
		}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &refusedURLError{resp.StatusCode}
	default:
		err := fmt.Errorf("the storage answered %s%s", signedurl.CleanText(resp.Status), storageMessage(resp.Body))
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			_ = t.restart()
			return err
		}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests &&
			resp.StatusCode != http.StatusRequestTimeout {
			return permanent(err)
		}
		return &slowDownError{err, pixxel.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	if t.total > t.o.MaxBytes {
		return refused("the package is %s, more than --max-bytes (%s)", humanBytes(float64(t.total)),
			humanBytes(float64(t.o.MaxBytes)))
	}
	return t.receive(ctx, cancel, resp.Body)
}

// receive appends the body to the file, ending the attempt when no byte arrives for IdleTimeout.
func (t *transfer) receive(ctx context.Context, cancel context.CancelCauseFunc, body io.Reader) error {
	if _, err := t.f.Seek(t.have, io.SeekStart); err != nil {
		return &Error{ExitFailed, err}
	}
	idle := time.AfterFunc(t.o.IdleTimeout, func() { cancel(errStalled) })
	defer idle.Stop()
	prog := newProgress(t.o, t.have, t.total)
	defer prog.stop()

	out := &fileWriter{f: t.f}
	in := &idleReader{r: io.LimitReader(body, t.o.MaxBytes-t.have+1), timer: idle, d: t.o.IdleTimeout}
	n, copyErr := io.Copy(out, io.TeeReader(in, prog))
	t.have += n
	prog.finish(t.have)
	switch {
	case out.err != nil:
		return &Error{ExitFailed, fmt.Errorf("writing the download: %w", out.err)}
	case t.have > t.o.MaxBytes:
		return refused("the package exceeds --max-bytes (%s)", humanBytes(float64(t.o.MaxBytes)))
	case copyErr != nil && errors.Is(context.Cause(ctx), errStalled):
		return fmt.Errorf("no data received for %s after %s; the connection stalled", t.o.IdleTimeout,
			humanBytes(float64(t.have)))
	case copyErr != nil:
		return fmt.Errorf("connection lost after %s: %w", humanBytes(float64(t.have)), signedurl.StripURLError(copyErr))
	case t.total >= 0 && t.have != t.total:
		return fmt.Errorf("received %d of %d bytes (Content-Length)", t.have, t.total)
	}
	return nil
}
