package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// attempt makes one request, resuming after what was received when the object can be identified.
func (t *transfer) attempt(parent context.Context, rawURL string) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	req, conditional, err := t.request(ctx, rawURL)
	if err != nil {
		return err
	}
	resp, err := t.send(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()

	// The stall timer runs while waiting for the body's bytes, not while the disk takes them.
	idle := time.AfterFunc(t.o.IdleTimeout, func() { cancel(errStalled) })
	defer idle.Stop()
	body := bufio.NewReaderSize(&idleReader{r: resp.Body, timer: idle, d: t.o.IdleTimeout}, chunkSize)
	if more, err := t.accept(ctx, resp, body, conditional); !more || err != nil {
		return err
	}
	if t.total > t.o.MaxBytes {
		return refused("the package is %s, more than --max-bytes (%s)", humanBytes(float64(t.total)),
			humanBytes(float64(t.o.MaxBytes)))
	}
	return t.receive(ctx, body, idle)
}

// send sends req; an error names the redacted URL only (Get "https://host/key": cause).
func (t *transfer) send(req *http.Request) (*http.Response, error) {
	resp, err := t.o.HTTPClient.Do(req)
	if err == nil {
		return resp, nil
	}
	if p, ok := errors.AsType[*permanentError](err); ok {
		return nil, p
	}
	return nil, signedurl.StripURLError(err)
}

// accept checks the response's status and headers, and prepares t for its body; more says whether
// the body is to be received.
func (t *transfer) accept(ctx context.Context, resp *http.Response, body *bufio.Reader,
	conditional bool) (more bool, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		if t.have > 0 {
			t.o.Log.Info("The object changed or the storage does not resume; starting over")
		}
		// The first bytes tell the format; a short object has fewer.
		if err := t.begin(ctx, resp, body, resp.ContentLength); err != nil {
			return false, err
		}
		return true, nil
	case http.StatusPartialContent:
		if err := t.resumed(ctx, resp, body); err != nil {
			return false, err
		}
		return true, nil
	case http.StatusNotModified:
		if !conditional {
			return false, fmt.Errorf("the storage answered %s to an unconditional request",
				signedurl.CleanText(resp.Status))
		}
		t.unchanged = true
		return false, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, &refusedURLError{resp.StatusCode}
	default:
		return false, t.statusError(resp)
	}
}

// resumed checks that a 206 continues what was received, from the same object.
func (t *transfer) resumed(ctx context.Context, resp *http.Response, body *bufio.Reader) error {
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
	if t.have == 0 { // a 206 to a request without Range: the whole object after all
		return t.begin(ctx, resp, body, size)
	}
	if t.want.Algorithm == "" {
		t.want = digestOf(resp.Header, false)
	}
	return nil
}

// statusError is the error an unexpected status stands for: a 416 starts over, other 4xx answers
// (but 408 and 429) are permanent, and the rest are retried, after Retry-After when given.
func (t *transfer) statusError(resp *http.Response) error {
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

// begin starts receiving an object from its first byte (a 200): what an earlier response gave is
// discarded, the format is decided from the first bytes, and the bytes go to the extractor (tar,
// tar.gz) or to the partial file (zip, or a file kept as is).
func (t *transfer) begin(ctx context.Context, resp *http.Response, body *bufio.Reader, total int64) error {
	// The first bytes tell the format when not given; a short object has fewer.
	var head []byte
	if t.o.Extract == FormatAuto {
		var err error
		if head, err = body.Peek(detectLength); err != nil && !errors.Is(err, io.EOF) {
			return t.connectionError(ctx, err)
		}
	}
	if err := t.restart(); err != nil {
		return &Error{ExitFailed, err}
	}
	t.total, t.etag, t.lastModified = total, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	t.want = digestOf(resp.Header, true)
	t.format = detectFormat(t.o, head)
	if streams(t.format) {
		t.closeFile(true)
		s, err := newStreamSink(t.o, t.format)
		if err != nil {
			return &Error{ExitFailed, fmt.Errorf("creating the staging directory: %w", err)}
		}
		t.stream = s
		return nil
	}
	if err := t.openFile(); err != nil {
		t.file = nil
		return &Error{ExitFailed, fmt.Errorf("creating the download file: %w", err)}
	}
	if err := t.saveState(); err != nil {
		return &Error{ExitFailed, fmt.Errorf("saving the download's state: %w", err)}
	}
	return nil
}

// connectionError says why the body stopped.
func (t *transfer) connectionError(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("no data received for %s after %s; the connection stalled", t.o.IdleTimeout,
			humanBytes(float64(t.have)))
	}
	return fmt.Errorf("connection lost after %s: %w", humanBytes(float64(t.have)), signedurl.StripURLError(err))
}
