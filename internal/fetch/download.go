package fetch

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"
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
