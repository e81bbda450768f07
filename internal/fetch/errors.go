package fetch

import (
	"errors"
	"fmt"
)

// Exit codes of the fetch command. A Job's podFailurePolicy can act on them: 3 and 4 are worth
// another pod (a URL may be published, the storage may recover), 5 is not (the same package would be
// refused again).
const (
	ExitOK             = 0
	ExitFailed         = 1 // anything not listed below: disk full, unreadable archive, a bug
	ExitUsage          = 2 // invalid flags or option values
	ExitNoURL          = 3 // no URL appeared within --wait-timeout (or --url-env is empty)
	ExitDownloadFailed = 4 // failed after the retries, stalled, timed out, corrupt, or refused with no new URL
	ExitRefused        = 5 // the package is unsafe or over --max-bytes / --max-entries
)

// ExitCodes documents the exit codes, for --help and the README.
const ExitCodes = `Exit codes:
  0  the package is in place
  1  anything else (disk full, unreadable archive, ...)
  2  usage: invalid flags or values
  3  no URL appeared within --wait-timeout, or the --url-env variable is empty
  4  the download failed after --retries attempts (errors, stalls), did not finish within --timeout,
     did not match the storage's digest, or the storage refused the URL (403) and no new URL appeared
  5  the package was refused: an entry outside the destination, a link that resolves outside it, a
     hard link or device, more than --max-entries entries, or more than --max-bytes`

// Error is an error with the exit code it stands for. The kinds are created by the constructors below
// and mapped to exit codes only by ExitCode.
type Error struct {
	code int
	err  error
}

func (e *Error) Error() string { return e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &Error{ExitUsage, fmt.Errorf(format, args...)}
}

func noURLError(format string, args ...any) error {
	return &Error{ExitNoURL, fmt.Errorf(format, args...)}
}

func downloadFailed(err error) error { return &Error{ExitDownloadFailed, err} }

func refused(format string, args ...any) error {
	return &Error{ExitRefused, fmt.Errorf(format, args...)}
}

// ExitCode maps an error returned by Run to the process's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.code
	}
	return ExitFailed
}
