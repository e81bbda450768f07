package fetch

import (
	"crypto/x509"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
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

// Limits on archive entry names: real packages are a few levels deep, and a deep tree costs a path walk
// per entry (2,000 files 1,000 levels deep take minutes).
const (
	MaxPathDepth  = 64
	MaxPathLength = 1024
	MaxNameLength = 255
)

// Options configures one fetch. Zero fields take their value from DefaultOptions.
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
	// Retries is how many failed attempts are retried. The delay starts at RetryDelay, doubles, and is
	// jittered and capped at RetryMaxDelay.
	Retries       int
	RetryDelay    time.Duration
	RetryMaxDelay time.Duration
	// ConnectTimeout bounds the TCP connection and TLS handshake; ResponseHeaderTimeout the wait for the
	// response's headers; IdleTimeout the wait for the next byte of the body. Any of them ends the
	// attempt, which is retried from where it stopped.
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	IdleTimeout           time.Duration
	// Timeout bounds the whole run, so that a storage that sends a byte just often enough to escape
	// IdleTimeout cannot hold the pod for ever.
	Timeout time.Duration
	// ProgressInterval is how often progress is logged.
	ProgressInterval time.Duration
	// MaxBytes bounds the download and, separately, the extracted size. MaxEntries bounds the entries
	// of an archive (directories, files and links).
	MaxBytes   int64
	MaxEntries int
	// FileMode and DirMode are the permissions of what is written, whatever the archive says, so that
	// the pod's other containers (other UIDs) can read it.
	FileMode fs.FileMode
	DirMode  fs.FileMode
	// RootCAs verify the storage's certificate when HTTPClient is not set; nil: the system's roots.
	RootCAs *x509.CertPool
	// HTTPClient defaults to one built from the timeouts above. Redirects from https to http are
	// refused whatever client is given.
	HTTPClient *http.Client
	// Log receives progress and retries.
	Log *slog.Logger
	// PollInterval is how often the URL file is re-read while waiting.
	PollInterval time.Duration
}

// DefaultOptions holds every default, for Run and for the command's flags.
func DefaultOptions() Options {
	return Options{
		Extract:               FormatAuto,
		WaitTimeout:           10 * time.Minute,
		Retries:               5,
		RetryDelay:            time.Second,
		RetryMaxDelay:         time.Minute,
		ConnectTimeout:        30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleTimeout:           time.Minute,
		Timeout:               6 * time.Hour,
		ProgressInterval:      10 * time.Second,
		MaxBytes:              50 << 30,
		MaxEntries:            100_000,
		FileMode:              0o644,
		DirMode:               0o755,
		PollInterval:          time.Second,
	}
}

// complete fills zero fields from DefaultOptions and checks the rest; its errors are usage errors.
func (o *Options) complete() error {
	d := DefaultOptions()
	if o.URLFile == "" && o.URLEnv == "" {
		return usageError("one of --url-file or --url-env is required")
	}
	if o.URLFile != "" && o.URLEnv != "" {
		return usageError("--url-file and --url-env are exclusive")
	}
	if o.Dest == "" {
		return usageError("--dest is required")
	}
	switch o.Extract {
	case "":
		o.Extract = d.Extract
	case FormatAuto, FormatZip, FormatTar, FormatTarGz, FormatNone:
	default:
		return usageError("--extract must be auto, zip, tar, tar.gz or none, not %q", o.Extract)
	}
	if o.Retries < 0 {
		return usageError("--retries must not be negative")
	}
	if o.FileMode&^fs.ModePerm != 0 || o.DirMode&^fs.ModePerm != 0 {
		return usageError("--file-mode and --dir-mode are permission bits (0 to 0777)")
	}
	if o.OutputName != "" && !validName(o.OutputName) {
		return usageError("--output-name must be a plain file name, not %q", o.OutputName)
	}
	if reservedName(o.OutputName) {
		return usageError("--output-name %q is a name fetch keeps for its own files (%s, .fetch-*)",
			o.OutputName, recordName)
	}
	setDefault(&o.WaitTimeout, d.WaitTimeout)
	setDefault(&o.RetryDelay, d.RetryDelay)
	setDefault(&o.RetryMaxDelay, d.RetryMaxDelay)
	setDefault(&o.ConnectTimeout, d.ConnectTimeout)
	setDefault(&o.ResponseHeaderTimeout, d.ResponseHeaderTimeout)
	setDefault(&o.IdleTimeout, d.IdleTimeout)
	setDefault(&o.Timeout, d.Timeout)
	setDefault(&o.ProgressInterval, d.ProgressInterval)
	setDefault(&o.PollInterval, d.PollInterval)
	setDefault(&o.MaxBytes, d.MaxBytes)
	setDefault(&o.MaxEntries, d.MaxEntries)
	setDefault(&o.FileMode, d.FileMode)
	setDefault(&o.DirMode, d.DirMode)
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	o.HTTPClient = withSafeRedirects(o.HTTPClient, o)
	return nil
}

func setDefault[T ~int | ~int64 | ~uint32](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// validName reports whether name is a single path element we may create.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= MaxNameLength && !strings.ContainsAny(name, "/\\") && !hasControl(name)
}
