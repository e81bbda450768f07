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
	cl := newCommandLine(&o)
	if err := cl.flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cl.usage(stdout)
			return fetch.ExitOK
		}
		_, _ = fmt.Fprintf(stderr, "fetch: %v\nRun fetch --help for the flags.\n", err)
		return fetch.ExitUsage
	}
	if cl.flags.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "fetch: unexpected arguments %q\nRun fetch --help for the flags.\n", cl.flags.Args())
		return fetch.ExitUsage
	}
	if *cl.showVersion {
		_, _ = fmt.Fprintln(stdout, "fetch", version.String())
		return fetch.ExitOK
	}
	if err := cl.complete(&o, stderr); err != nil {
		_, _ = fmt.Fprintf(stderr, "fetch: %v\n", err)
		return fetch.ExitUsage
	}
	err := fetch.Run(ctx, o)
	if err != nil {
		// The storage's words reach here; no control character gets to the terminal or the log.
		_, _ = fmt.Fprintf(stderr, "fetch: %s\n", signedurl.CleanText(err.Error()))
	}
	return fetch.ExitCode(err)
}

// complete sets the options the flags give only indirectly: the CA pool, the default URL variable,
// and the logger, writing to stderr.
func (cl *commandLine) complete(o *fetch.Options, stderr io.Writer) error {
	roots, err := tlsroots.Pool(cl.caFiles...)
	if err != nil {
		return fmt.Errorf("--ca-file: %w", err)
	}
	o.RootCAs = roots
	if o.URLFile == "" && o.URLEnv == "" {
		o.URLEnv = defaultURLEnv
	}
	switch *cl.logFormat {
	case "text":
		o.Log = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		o.Log = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", *cl.logFormat)
	}
	return nil
}
