package fetch

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// transfer is one download across attempts: what has been received, which object it came from, and
// where it goes (a file, or straight to the extractor).
type transfer struct {
	o    Options
	have int64
	// total is the object's size, -1 when unknown.
	total int64
	// etag and lastModified identify the object the bytes received came from; a resumed response must
	// carry the same one, or the package would hold the start of one object and the end of another.
	etag, lastModified string
	// want is the digest the storage sent (empty Algorithm: none); sum hashes the bytes received, of
	// which summed so far.
	want   digest
	sum    hash.Hash
	summed int64
	// format is how the package is placed; a tar or tar.gz goes to stream, anything else to file.
	format string
	file   *os.File
	stream *streamSink
	// previous is what the last successful run placed in Dest; unchanged is set when the storage says
	// (304) that it is still the current object.
	previous  *Record
	unchanged bool
}

// download writes the package into t's file, retrying and resuming, and returns the URL it came from.
func (t *transfer) download(ctx context.Context, rawURL string) (string, error) {
	o := t.o
	backoff := retryBackoff(o)
	failures := 0
	for {
		err := t.attempt(ctx, rawURL)
		if err == nil && !t.unchanged {
			err = t.verify()
		}
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

// attempt makes one request, resuming after what was received when the object can be identified.
func (t *transfer) attempt(parent context.Context, rawURL string) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	req, conditional, err := t.request(ctx, rawURL)
	if err != nil {
		return err
	}
	resp, err := t.o.HTTPClient.Do(req)
	if err != nil {
		if p, ok := errors.AsType[*permanentError](err); ok {
			return p
		}
		return signedurl.StripURLError(err) // names the redacted URL: Get "https://host/key": cause
	}
	defer func() { _ = resp.Body.Close() }()

	// The stall timer runs while waiting for the body's bytes, not while the disk takes them.
	idle := time.AfterFunc(t.o.IdleTimeout, func() { cancel(errStalled) })
	defer idle.Stop()
	body := bufio.NewReaderSize(&idleReader{r: resp.Body, timer: idle, d: t.o.IdleTimeout}, chunkSize)
	switch resp.StatusCode {
	case http.StatusOK:
		if t.have > 0 {
			t.o.Log.Info("The object changed or the storage does not resume; starting over")
		}
		// The first bytes tell the format; a short object has fewer.
		if err := t.begin(ctx, resp, body, resp.ContentLength); err != nil {
			return err
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
		if t.have == 0 { // a 206 to a request without Range: the whole object after all
			if err := t.begin(ctx, resp, body, size); err != nil {
				return err
			}
		} else if t.want.Algorithm == "" {
			t.want = digestOf(resp.Header, false)
		}
	case http.StatusNotModified:
		if !conditional {
			return fmt.Errorf("the storage answered %s to an unconditional request", signedurl.CleanText(resp.Status))
		}
		t.unchanged = true
		return nil
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
	return t.receive(ctx, body, idle)
}

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

// receive passes the body on, hashing it. idle ends the attempt when no byte arrives for IdleTimeout;
// it is paused while the disk takes the bytes, which is no fault of the storage's.
func (t *transfer) receive(ctx context.Context, body io.Reader, idle *time.Timer) error {
	if t.file != nil {
		if _, err := t.file.Seek(t.have, io.SeekStart); err != nil {
			return &Error{ExitFailed, err}
		}
	}
	if err := t.catchUpSum(); err != nil {
		return &Error{ExitFailed, fmt.Errorf("reading the download: %w", err)}
	}
	prog := newProgress(t.o, t.have, t.total)
	defer prog.stop()
	out := t.writer()
	in := io.LimitReader(body, t.o.MaxBytes-t.have+1)
	var buf []byte
	var copyErr, writeErr error
	var hasher *hashingSender
	if t.stream != nil && t.sum != nil && costlyDigest(t.want.Algorithm) {
		hasher = startHashing(t.sum, t.stream)
	}
	for {
		if t.stream != nil {
			buf = t.stream.buffer() // read straight into the extractor's queue
		} else if buf == nil {
			buf = make([]byte, chunkSize)
		}
		n, err := in.Read(buf)
		if n > 0 {
			if t.sum != nil {
				if hasher == nil {
					_, _ = t.sum.Write(buf[:n])
				}
				t.summed += int64(n)
			}
			idle.Stop()
			if hasher != nil {
				writeErr = hasher.send(buf[:n])
			} else if t.stream != nil {
				_, writeErr = t.stream.send(buf[:n])
			} else {
				_, writeErr = out.Write(buf[:n])
			}
			idle.Reset(t.o.IdleTimeout)
			if writeErr != nil {
				break
			}
			t.have += int64(n)
			prog.add(n)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				copyErr = err
			}
			break
		}
	}
	if hasher != nil {
		if err := hasher.close(); err != nil && writeErr == nil {
			writeErr = err
		}
	}
	prog.finish(t.have)
	switch {
	case writeErr != nil:
		if _, ok := errors.AsType[*Error](writeErr); ok {
			return writeErr // the extractor refused the package
		}
		return &Error{ExitFailed, fmt.Errorf("writing the download: %w", writeErr)}
	case t.have > t.o.MaxBytes:
		return refused("the package exceeds --max-bytes (%s)", humanBytes(float64(t.o.MaxBytes)))
	case copyErr != nil:
		return t.connectionError(ctx, copyErr)
	case t.total >= 0 && t.have != t.total:
		return fmt.Errorf("received %d of %d bytes (Content-Length)", t.have, t.total)
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

// writer is where the next bytes go.
func (t *transfer) writer() io.Writer {
	if t.stream != nil {
		return t.stream
	}
	return t.file
}

// catchUpSum makes sum cover the bytes received so far: after a resume from a previous run, or a
// truncation, it hashes them again from the partial file.
func (t *transfer) catchUpSum() error {
	if t.want.Algorithm == "" {
		t.sum = nil
		return nil
	}
	if t.sum != nil && t.summed == t.have {
		return nil
	}
	t.sum, t.summed = newHash(t.want.Algorithm), 0
	if t.have == 0 {
		return nil
	}
	if t.file == nil {
		return errors.New("no partial download to hash")
	}
	n, err := io.Copy(t.sum, io.NewSectionReader(t.file, 0, t.have))
	t.summed = n
	if err != nil {
		return err
	}
	_, err = t.file.Seek(t.have, io.SeekStart)
	return err
}

// verify checks the complete download against the storage's digest.
func (t *transfer) verify() error {
	if t.sum == nil || t.want.Algorithm == "" {
		return nil
	}
	if got := hex.EncodeToString(t.sum.Sum(nil)); got != t.want.Hex {
		return downloadFailed(&digestMismatchError{want: t.want, got: got})
	}
	return nil
}

// finish places the complete package into Dest and returns how it was placed: a streamed archive's
// tree is already extracted, a zip is extracted now, a plain file is renamed to name.
func (t *transfer) finish(name string) error {
	if t.stream != nil {
		err := t.stream.finish()
		t.stream = nil
		return err
	}
	if t.format != FormatNone { // a zip, or a tar whose partial file a previous version left
		return extractFile(t.o, t.file, t.format)
	}
	if err := t.file.Chmod(t.o.FileMode); err != nil {
		return err
	}
	if err := t.file.Close(); err != nil {
		return err
	}
	if err := os.Rename(t.file.Name(), filepath.Join(t.o.Dest, name)); err != nil {
		return fmt.Errorf("moving download into place: %w", err)
	}
	t.file = nil
	return nil
}

// close releases what an unfinished transfer holds; the partial file stays for the next run when
// keep.
func (t *transfer) close(keep bool) {
	if t.stream != nil {
		t.stream.abort()
		t.stream = nil
	}
	t.closeFile(!keep)
}
