// Package fetch downloads a task's package from a signed URL published by the operator, for use in an
// init container or a job step. It waits for the URL to appear, re-reads it on every attempt (so a URL
// the operator refreshed is picked up), resumes interrupted downloads with Range requests, checks the
// length, extracts zip and tar(.gz) archives safely, and moves the result into place atomically.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Archive formats for Options.Extract.
const (
	FormatAuto  = "auto"
	FormatZip   = "zip"
	FormatTar   = "tar"
	FormatTarGz = "tar.gz"
	FormatNone  = "none"
)

// Options configures one fetch.
type Options struct {
	// URLFile is a file holding the URL (a mounted ConfigMap or Secret key); it is read again on every
	// attempt. URLEnv names an environment variable holding it instead.
	URLFile string
	URLEnv  string
	// Dest is the directory the package is extracted into, or the file is saved in.
	Dest string
	// Extract is auto, zip, tar, tar.gz or none.
	Extract string
	// OutputName is the file name used when not extracting; defaults to the URL path's last segment.
	OutputName string
	// WaitTimeout bounds waiting for the URL to appear and, after a 403, for a new URL.
	WaitTimeout time.Duration
	// Retries is how many failed attempts are retried; RetryDelay is the first delay, doubling.
	Retries    int
	RetryDelay time.Duration
	// ProgressInterval is how often progress is logged.
	ProgressInterval time.Duration
	// MaxBytes bounds the download and the extracted size.
	MaxBytes int64
	// HTTPClient defaults to a client without an overall timeout (packages can be large).
	HTTPClient *http.Client
	// Log receives progress and retries.
	Log *slog.Logger
	// PollInterval is how often the URL source is re-read while waiting.
	PollInterval time.Duration
}

func (o *Options) defaults() error {
	if o.URLFile == "" && o.URLEnv == "" {
		return errors.New("one of --url-file or --url-env is required")
	}
	if o.Dest == "" {
		return errors.New("--dest is required")
	}
	switch o.Extract {
	case "":
		o.Extract = FormatAuto
	case FormatAuto, FormatZip, FormatTar, FormatTarGz, FormatNone:
	default:
		return fmt.Errorf("--extract must be auto, zip, tar, tar.gz or none, not %q", o.Extract)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 5 * time.Second
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 50 << 30
	}
	return nil
}

// Run fetches the package. The error says what failed; the URL's query string never appears in it.
func Run(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dest, 0o755); err != nil {
		return fmt.Errorf("creating destination: %w", err)
	}
	rawURL, err := waitForURL(ctx, o, "")
	if err != nil {
		return err
	}
	partial, err := os.CreateTemp(o.Dest, ".fetch-*.partial")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	defer func() { _ = os.Remove(partial.Name()) }()
	defer func() { _ = partial.Close() }()

	if err := download(ctx, o, rawURL, partial); err != nil {
		return err
	}
	kind, err := archiveKind(o, partial)
	if err != nil {
		return err
	}
	if kind == FormatNone {
		name := o.OutputName
		if name == "" {
			name = outputName(rawURL)
		}
		if err := partial.Close(); err != nil {
			return err
		}
		final := filepath.Join(o.Dest, name)
		if err := os.Rename(partial.Name(), final); err != nil {
			return fmt.Errorf("moving download into place: %w", err)
		}
		o.Log.Info("Saved package", "file", final)
		return nil
	}
	if err := extractInto(o, partial, kind); err != nil {
		return err
	}
	o.Log.Info("Extracted package", "dest", o.Dest, "format", kind)
	return nil
}

// readURL reads the URL from its source, trimmed; empty when not there yet.
func readURL(o Options) (string, error) {
	if o.URLFile != "" {
		b, err := os.ReadFile(o.URLFile)
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("reading URL file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv(o.URLEnv)), nil
}

// waitForURL waits until the source holds a URL other than previous.
func waitForURL(ctx context.Context, o Options, previous string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.WaitTimeout)
	defer cancel()
	logged := false
	for {
		u, err := readURL(o)
		if err != nil {
			return "", err
		}
		if u != "" && u != previous {
			return u, nil
		}
		if !logged {
			what := "the signed URL to be published"
			if previous != "" {
				what = "a new signed URL (the previous one was refused)"
			}
			o.Log.Info("Waiting for "+what, "source", source(o), "timeout", o.WaitTimeout)
			logged = true
		}
		select {
		case <-ctx.Done():
			if previous != "" {
				return "", fmt.Errorf("the storage refused the URL and no new URL appeared in %s within %s", source(o), o.WaitTimeout)
			}
			return "", fmt.Errorf("no URL appeared in %s within %s", source(o), o.WaitTimeout)
		case <-time.After(o.PollInterval):
		}
	}
}

func source(o Options) string {
	if o.URLFile != "" {
		return o.URLFile
	}
	return "$" + o.URLEnv
}

// redact drops the query string and fragment, where signatures live.
func redact(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}

func outputName(rawURL string) string {
	p := redact(rawURL)
	if i := strings.Index(p, "://"); i >= 0 {
		p = p[i+3:]
		if j := strings.Index(p, "/"); j >= 0 {
			p = p[j:]
		} else {
			p = "/"
		}
	}
	name := path.Base(p)
	if name == "" || name == "/" || name == "." || name == ".." {
		return "package"
	}
	return name
}

// download writes the package into f, retrying and resuming.
func download(ctx context.Context, o Options, rawURL string, f *os.File) error {
	var lastErr error
	delay := o.RetryDelay
	for attempt := 0; attempt <= o.Retries; attempt++ {
		if attempt > 0 {
			o.Log.Info("Retrying download", "attempt", attempt, "of", o.Retries, "in", delay, "error", lastErr)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
			// A refreshed URL is used as soon as it is published.
			if u, err := readURL(o); err == nil && u != "" {
				rawURL = u
			}
		}
		done, err := attemptDownload(ctx, o, rawURL, f)
		if done {
			return nil
		}
		if refused, ok := errors.AsType[*refusedError](err); ok {
			o.Log.Info("The storage refused the URL; it has probably expired. Waiting for a new one", "status", refused.status)
			u, werr := waitForURL(ctx, o, rawURL)
			if werr != nil {
				return werr
			}
			rawURL = u
			attempt-- // a refreshed URL is not a failed attempt
			continue
		}
		if _, ok := errors.AsType[*fatalError](err); ok {
			return err
		}
		lastErr = err
	}
	return fmt.Errorf("download failed after %d attempts: %w", o.Retries+1, lastErr)
}

type refusedError struct{ status int }

func (e *refusedError) Error() string { return fmt.Sprintf("storage answered %d", e.status) }

type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// attemptDownload makes one request, resuming after what f already holds.
func attemptDownload(ctx context.Context, o Options, rawURL string, f *os.File) (bool, error) {
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, &fatalError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return false, &fatalError{fmt.Errorf("invalid URL %s", redact(rawURL))}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("requesting %s: %w", redact(rawURL), stripURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()

	var total int64
	switch resp.StatusCode {
	case http.StatusOK:
		if have > 0 {
			o.Log.Info("The storage does not resume downloads; starting over")
			if err := f.Truncate(0); err != nil {
				return false, &fatalError{err}
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return false, &fatalError{err}
			}
			have = 0
		}
		total = resp.ContentLength
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return false, fmt.Errorf("the storage answered an unexpected range %q", resp.Header.Get("Content-Range"))
		}
		total = size
	case http.StatusRequestedRangeNotSatisfiable:
		if _, size, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && size == have {
			return true, nil
		}
		if err := f.Truncate(0); err != nil {
			return false, &fatalError{err}
		}
		return false, errors.New("the storage refused to resume; starting over")
	case http.StatusForbidden, http.StatusUnauthorized:
		return false, &refusedError{resp.StatusCode}
	default:
		err := fmt.Errorf("the storage answered %s", resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests &&
			resp.StatusCode != http.StatusRequestTimeout {
			return false, &fatalError{err}
		}
		return false, err
	}
	if total > o.MaxBytes {
		return false, &fatalError{fmt.Errorf("the package is %d bytes, more than the limit of %d", total, o.MaxBytes)}
	}

	prog := newProgress(o, have, total)
	defer prog.stop()
	n, copyErr := io.Copy(f, io.TeeReader(io.LimitReader(resp.Body, o.MaxBytes-have+1), prog))
	have += n
	prog.finish(have)
	if have > o.MaxBytes {
		return false, &fatalError{fmt.Errorf("the package exceeds the limit of %d bytes", o.MaxBytes)}
	}
	if copyErr != nil {
		return false, fmt.Errorf("connection lost after %d bytes: %w", have, stripURLError(copyErr))
	}
	if total >= 0 && have != total {
		return false, fmt.Errorf("received %d of %d bytes (Content-Length)", have, total)
	}
	return true, nil
}

// parseContentRange reads "bytes start-end/size" or "bytes */size".
func parseContentRange(v string) (start, size int64, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	size, err := strconv.ParseInt(sz, 10, 64)
	if err != nil {
		size = -1
	}
	if rng == "*" {
		return 0, size, size >= 0
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err = strconv.ParseInt(s, 10, 64)
	return start, size, err == nil
}

// stripURLError keeps the cause of a *url.Error, whose text repeats the signed URL.
func stripURLError(err error) error {
	type unwrapper interface{ Unwrap() error }
	for {
		s := err.Error()
		if !strings.Contains(s, "?") {
			return err
		}
		u, ok := err.(unwrapper)
		if !ok || u.Unwrap() == nil {
			return errors.New(redact(s))
		}
		err = u.Unwrap()
	}
}
