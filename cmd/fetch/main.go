// Command fetch downloads a task's package from the signed URL the operator publishes. Run it as an
// init container or a job step:
//
//	fetch --url-file /etc/taskdownload/SIGNED_URL --dest /data
//
// See `fetch --help` for the flags and the exit codes, and package internal/fetch for how it works.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/tlsroots"
	"github.com/pixxel-space/taskdownload-operator/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// defaultURLEnv is the published key SIGNED_URL (api/v1alpha1.KeySignedURL; fetch does not import the
// API types, which would pull Kubernetes' libraries into the helper: contract_test.go ties the two).
const defaultURLEnv = "SIGNED_URL"

const synopsis = `Usage: fetch --url-file FILE --dest DIR [flags]

Downloads the package behind the signed URL that the taskdownload operator publishes, and extracts it
into DIR. It waits for the URL to appear, re-reads it on every attempt (a mounted ConfigMap or Secret
follows the operator's refreshes), resumes only while the object is unchanged, retries with jittered
backoff, and moves the result into place only when everything succeeded.

Flags:
`

// run is the command without the process around it: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := fetch.DefaultOptions()
	flags := flag.NewFlagSet("fetch", flag.ContinueOnError)
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
	logFormat := flags.String("log-format", "text", "Log lines as text (key=value) or json.")
	flags.Var(bytesFlag{&o.MaxBytes}, "max-bytes",
		"Largest download, and largest extracted size, accepted, as a `quantity` (50Gi, 500M). A tar or tar.gz\n"+
			"is extracted while it downloads and needs its extracted size on the volume; a zip is downloaded,\n"+
			"then extracted, and needs both: size the volume (emptyDir sizeLimit) at this, or twice it for zips.")
	flags.IntVar(&o.MaxEntries, "max-entries", o.MaxEntries,
		"Most entries (files, directories, links) an archive may hold.")
	flags.Var(modeFlag{&o.FileMode}, "file-mode", "Permissions of the files written, in `octal`.")
	flags.Var(modeFlag{&o.DirMode}, "dir-mode", "Permissions of the directories created, in `octal`.")
	var caFiles tlsroots.Files
	flags.Var(&caFiles, "ca-file", "For the storage behind the URL: "+tlsroots.Usage)
	showVersion := flags.Bool("version", false, "Print the version and exit.")

	usage := func(w io.Writer) {
		_, _ = fmt.Fprint(w, synopsis)
		flags.SetOutput(w)
		flags.PrintDefaults()
		flags.SetOutput(io.Discard)
		_, _ = fmt.Fprintf(w, "\nArchive entries may be at most %d levels deep, with names of at most %d bytes.\n\n%s\n",
			fetch.MaxPathDepth, fetch.MaxPathLength, fetch.ExitCodes)
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return fetch.ExitOK
		}
		_, _ = fmt.Fprintf(stderr, "fetch: %v\nRun fetch --help for the flags.\n", err)
		return fetch.ExitUsage
	}
	if flags.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "fetch: unexpected arguments %q\nRun fetch --help for the flags.\n", flags.Args())
		return fetch.ExitUsage
	}
	if *showVersion {
		_, _ = fmt.Fprintln(stdout, "fetch", version.String())
		return fetch.ExitOK
	}
	roots, err := tlsroots.Pool(caFiles...)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "fetch: --ca-file: %v\n", err)
		return fetch.ExitUsage
	}
	o.RootCAs = roots
	if o.URLFile == "" && o.URLEnv == "" {
		o.URLEnv = defaultURLEnv
	}
	switch *logFormat {
	case "text":
		o.Log = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		o.Log = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		_, _ = fmt.Fprintf(stderr, "fetch: --log-format must be text or json, not %q\n", *logFormat)
		return fetch.ExitUsage
	}
	err = fetch.Run(ctx, o)
	if err != nil {
		// The storage's words reach here; no control character gets to the terminal or the log.
		_, _ = fmt.Fprintf(stderr, "fetch: %s\n", signedurl.CleanText(err.Error()))
	}
	return fetch.ExitCode(err)
}
