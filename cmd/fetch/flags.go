package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
)

// commandLine is fetch's flags: those that set fetch.Options directly, and the rest.
type commandLine struct {
	flags       *flag.FlagSet
	logFormat   *string
	caFiles     tlsroots.Files
	showVersion *bool
}

// newCommandLine defines the flags, with o's values as their defaults.
func newCommandLine(o *fetch.Options) *commandLine {
	cl := &commandLine{flags: flag.NewFlagSet("fetch", flag.ContinueOnError)}
	flags := cl.flags
	flags.SetOutput(io.Discard)
	flags.StringVar(&o.URLFile, "url-file", "",
		"File holding the signed URL, such as a mounted SIGNED_URL key; re-read on every attempt.")
	flags.StringVar(&o.URLEnv, "url-env", "",
		"Environment variable holding the signed URL (default SIGNED_URL when --url-file is not set). It is\n"+
			"fixed at container start: when it is empty fetch exits at once (code 3) so that the kubelet\n"+
			"restarts it with fresh values. Prefer --url-file.")
	flags.StringVar(&o.Dest, "dest", "", "Directory to extract the package into, or to save it in.")
	flags.StringVar(&o.Extract, "extract", o.Extract,
		"auto (by content), zip, tar, tar.gz, or none to keep the file as is.")
	flags.StringVar(&o.OutputName, "output-name", "",
		"File name when not extracting (default: the URL path's last segment).")
	flags.DurationVar(&o.WaitTimeout, "wait-timeout", o.WaitTimeout,
		"How long to wait for the URL to appear, or for a new one after the storage refused it (403).")
	flags.IntVar(&o.Retries, "retries", o.Retries, "Failed attempts to retry, resuming where the last one stopped.")
	flags.DurationVar(&o.RetryDelay, "retry-delay", o.RetryDelay,
		"First delay between attempts; it doubles, with up to 50% random jitter, up to --retry-max-delay.")
	flags.DurationVar(&o.RetryMaxDelay, "retry-max-delay", o.RetryMaxDelay,
		"Longest delay between attempts, jitter included.")
	flags.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout,
		"Longest wait for a connection and its TLS handshake.")
	flags.DurationVar(&o.ResponseHeaderTimeout, "response-header-timeout", o.ResponseHeaderTimeout,
		"Longest wait for the storage's response headers once the request is sent.")
	flags.DurationVar(&o.IdleTimeout, "idle-timeout", o.IdleTimeout,
		"Longest wait for the next byte of the body; the attempt then ends and is retried from where it stopped.")
	flags.DurationVar(&o.Timeout, "timeout", o.Timeout,
		"Longest run, waits and retries included; a download still going then ends with exit code 4.")
	flags.DurationVar(&o.ProgressInterval, "progress-interval", o.ProgressInterval,
		"How often to log size, percent, rate and ETA.")
	cl.logFormat = flags.String("log-format", "text", "Log lines as text (key=value) or json.")
	flags.Var(bytesFlag{&o.MaxBytes}, "max-bytes",
		"Largest download, and largest extracted size, accepted, as a `quantity` (50Gi, 500M). A tar or tar.gz\n"+
			"is extracted while it downloads and needs its extracted size on the volume; a zip is downloaded,\n"+
			"then extracted, and needs both: size the volume (emptyDir sizeLimit) at this, or twice it for zips.")
	flags.IntVar(&o.MaxEntries, "max-entries", o.MaxEntries,
		"Most entries (files, directories, links) an archive may hold.")
	flags.Var(modeFlag{&o.FileMode}, "file-mode", "Permissions of the files written, in `octal`.")
	flags.Var(modeFlag{&o.DirMode}, "dir-mode", "Permissions of the directories created, in `octal`.")
	flags.Var(&cl.caFiles, "ca-file", "For the storage behind the URL: "+tlsroots.Usage)
	cl.showVersion = flags.Bool("version", false, "Print the version and exit.")
	return cl
}

// usage writes --help: the synopsis, the flags, the archive limits and the exit codes.
func (cl *commandLine) usage(w io.Writer) {
	_, _ = fmt.Fprint(w, synopsis)
	cl.flags.SetOutput(w)
	cl.flags.PrintDefaults()
	cl.flags.SetOutput(io.Discard)
	_, _ = fmt.Fprintf(w, "\nArchive entries may be at most %d levels deep, with names of at most %d bytes.\n\n%s\n",
		fetch.MaxPathDepth, fetch.MaxPathLength, fetch.ExitCodes)
}

// bytesFlag accepts a byte count as a Kubernetes quantity ("50Gi", "500M", "1048576"), the notation of
// the emptyDir sizeLimit it must fit in.
type bytesFlag struct{ v *int64 }

func (f bytesFlag) String() string {
	if f.v == nil {
		return ""
	}
	return resource.NewQuantity(*f.v, resource.BinarySI).String()
}

func (f bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a quantity such as 50Gi or 500M", s)
	}
	if q.Sign() <= 0 || q.Cmp(*resource.NewQuantity(math.MaxInt64, resource.BinarySI)) > 0 {
		return fmt.Errorf("%q is not a positive number of bytes", s)
	}
	*f.v = q.Value() // a fraction of a byte rounds up
	return nil
}

// modeFlag accepts permission bits in octal ("0644", "644").
type modeFlag struct{ v *fs.FileMode }

func (f modeFlag) String() string {
	if f.v == nil {
		return ""
	}
	return fmt.Sprintf("%04o", uint32(*f.v))
}

func (f modeFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n == 0 || n > 0o777 {
		return fmt.Errorf("%q is not an octal permission such as 0644", s)
	}
	*f.v = fs.FileMode(n)
	return nil
}
