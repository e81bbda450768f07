// Package fetch downloads a task's package from a signed URL published by the operator, for use in an
// init container or a job step. It waits for the URL to appear, re-reads it on every attempt (so a URL
// the operator refreshed is picked up), resumes interrupted downloads only while the object is the same
// one (Range + If-Range), bounds every wait, extracts zip and tar(.gz) archives confined to the
// destination, and moves the result into place only when all of it succeeded.
//
// Errors carry the exit code they stand for (see ExitCode); no error or log line holds a URL's
// userinfo or query string, or control characters sent by the storage.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Run fetches the package.
func Run(ctx context.Context, o Options) error {
	if err := o.complete(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dest, o.DirMode); err != nil {
		return fmt.Errorf("creating destination: %w", err)
	}
	removeLeftovers(o)
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, errTimeout)
	defer cancel()
	rawURL, err := waitForURL(ctx, o)
	if err != nil {
		return timedOut(ctx, err, noURLError)
	}
	if o.Extract == FormatNone {
		if _, err := savedName(o, rawURL); err != nil {
			return err
		}
	}
	t := newTransfer(o)
	t.previous = readRecord(o)
	keep := false
	defer func() { t.close(keep) }()
	if rawURL, err = t.download(ctx, rawURL); err != nil {
		// What was downloaded is kept for the next run only while it can still be completed.
		_, corrupt := errors.AsType[*digestMismatchError](err)
		keep = !corrupt && (ExitCode(err) == ExitDownloadFailed || errors.Is(err, context.Canceled) ||
			errors.Is(context.Cause(ctx), errTimeout))
		return timedOut(ctx, err, func(format string, args ...any) error {
			return downloadFailed(fmt.Errorf(format, args...))
		})
	}
	if t.unchanged {
		o.Log.Info("The package in place is the current object; nothing to do", "dest", o.Dest,
			"record", filepath.Join(o.Dest, recordName))
		return nil
	}
	rec := Record{URL: urlWithoutQuery(rawURL), Size: t.have, Format: t.format, ETag: t.etag,
		LastModified: t.lastModified}
	if t.want.Algorithm != "" {
		rec.Digest = t.want.String()
	}
	if t.format == FormatNone {
		if rec.File, err = savedName(o, rawURL); err != nil {
			return err
		}
	}
	if err := t.finish(rec.File); err != nil {
		return err
	}
	if err := writeRecord(o, rec); err != nil {
		return fmt.Errorf("writing %s: %w", recordName, err)
	}
	if rec.File != "" {
		o.Log.Info("Saved package", "file", filepath.Join(o.Dest, rec.File), "digest", rec.Digest)
	} else {
		o.Log.Info("Extracted package", "dest", o.Dest, "format", t.format, "digest", rec.Digest)
	}
	return nil
}

// errTimeout ends a run that reached --timeout.
var errTimeout = errors.New("--timeout reached")

// timedOut turns an error caused by --timeout into one that says so, with the exit code of the stage
// it interrupted.
func timedOut(ctx context.Context, err error, as func(string, ...any) error) error {
	if errors.Is(context.Cause(ctx), errTimeout) {
		if _, ok := errors.AsType[*Error](err); !ok || errors.Is(err, context.DeadlineExceeded) {
			deadline, _ := ctx.Deadline()
			return as("fetch did not finish within --timeout (it ended at %s)", deadline.UTC().Format(time.RFC3339))
		}
	}
	return err
}

// savedName is the name a package that is not extracted is saved under; fetch's own names are refused.
func savedName(o Options, rawURL string) (string, error) {
	if o.OutputName != "" {
		return o.OutputName, nil
	}
	name := outputName(rawURL)
	if reservedName(name) {
		return "", usageError("the URL's last segment %q is a name fetch keeps for its own files; "+
			"set --output-name", name)
	}
	return name, nil
}

// removeLeftovers removes what a killed run left in Dest (the kubelet restarts an init container in the
// same emptyDir): a half-extracted tree would otherwise take the volume's space. A partial download is
// resumed instead (see newTransfer).
func removeLeftovers(o Options) {
	stagings, _ := filepath.Glob(filepath.Join(o.Dest, stagingPattern))
	_ = os.Remove(filepath.Join(o.Dest, recordTemp))
	for _, p := range stagings {
		if err := os.RemoveAll(p); err == nil {
			o.Log.Info("Removed what an interrupted run left behind", "path", p)
		}
	}
}

// readURL reads the URL from its source, trimmed; empty when not there yet.
func readURL(o Options) (string, error) {
	if o.URLEnv != "" {
		return strings.TrimSpace(os.Getenv(o.URLEnv)), nil
	}
	b, err := os.ReadFile(o.URLFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading URL file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// waitForURL returns the URL once its source holds one. An environment variable cannot change in a
// running process, so an empty one fails at once: the kubelet then restarts the container with the
// values of the moment.
func waitForURL(ctx context.Context, o Options) (string, error) {
	if o.URLEnv != "" {
		u, _ := readURL(o)
		if u == "" {
			return "", noURLError("$%s is empty; it cannot change in a running container, so fetch exits "+
				"and the kubelet restarts it with the current value (prefer --url-file)", o.URLEnv)
		}
		return u, nil
	}
	u, err := pollURL(ctx, o, "", "Waiting for the signed URL to be published")
	if errors.Is(err, context.DeadlineExceeded) {
		return "", noURLError("no URL appeared in %s within %s", o.URLFile, o.WaitTimeout)
	}
	return u, err
}

// waitForNewURL waits for a URL other than the one the storage refused.
func waitForNewURL(ctx context.Context, o Options, refusedURL string, status int) (string, error) {
	if o.URLEnv != "" {
		return "", downloadFailed(fmt.Errorf("the storage refused the URL (%d) and $%s cannot change in a "+
			"running container (prefer --url-file)", status, o.URLEnv))
	}
	u, err := pollURL(ctx, o, refusedURL, "The storage refused the URL; it has probably expired. Waiting for a new one")
	if errors.Is(err, context.DeadlineExceeded) {
		return "", downloadFailed(fmt.Errorf("the storage refused the URL (%d) and no new URL appeared in %s within %s",
			status, o.URLFile, o.WaitTimeout))
	}
	return u, err
}

// pollURL re-reads the URL file until it holds a URL other than previous, for at most WaitTimeout.
// The file is a mounted ConfigMap or Secret key that the kubelet updates in place; polling it is what
// the kubelet's own atomic writer allows (no inotify event is promised across its symlink swap).
func pollURL(ctx context.Context, o Options, previous, waitMsg string) (string, error) {
	deadline, cancel := context.WithTimeout(ctx, o.WaitTimeout)
	defer cancel()
	t := time.NewTicker(o.PollInterval)
	defer t.Stop()
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
			o.Log.Info(waitMsg, "source", o.URLFile, "timeout", o.WaitTimeout)
			logged = true
		}
		select {
		case <-deadline.Done():
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", context.DeadlineExceeded
		case <-t.C:
		}
	}
}

// outputName is the URL path's last segment, or "package".
func outputName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "package"
	}
	name := path.Base(u.Path)
	if !validName(name) || name == "/" {
		return "package"
	}
	return name
}
