package fetch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

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
	copyErr, writeErr := t.copyBody(body, idle, prog)
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

// copyBody reads the body, up to one byte over --max-bytes, into the file or the extractor, until it
// ends or a write fails. It returns the read's error (nil at the end of the body) apart from the
// write's: a write failing is not the connection's fault.
func (t *transfer) copyBody(body io.Reader, idle *time.Timer, prog *progress) (copyErr, writeErr error) {
	out := t.writer()
	in := io.LimitReader(body, t.o.MaxBytes-t.have+1)
	var buf []byte
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
	return copyErr, writeErr
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
