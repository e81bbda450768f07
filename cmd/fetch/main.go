// Command fetch downloads a task's package from the signed URL the operator publishes. Run it as an
// init container or a job step:
//
//	fetch --url-file /etc/taskdownload/SIGNED_URL --dest /data
//
// It waits for the URL to appear, re-reads it on every attempt (a mounted ConfigMap or Secret follows
// the operator's refreshes), resumes interrupted downloads, checks Content-Length, extracts zip and
// tar(.gz) archives safely and moves the result into place atomically. It exits non-zero with a clear
// message when it cannot.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	// The image has no CA bundle of its own (it is built from scratch): these roots let HTTPS to the
	// signed URL verify when the system offers none.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

func main() {
	o := fetch.Options{}
	flag.StringVar(&o.URLFile, "url-file", "",
		"File holding the signed URL, such as a mounted SIGNED_URL key; re-read on every attempt.")
	flag.StringVar(&o.URLEnv, "url-env", "",
		"Environment variable holding the signed URL (fixed at pod start; prefer --url-file).")
	flag.StringVar(&o.Dest, "dest", "", "Directory to extract the package into, or to save it in.")
	flag.StringVar(&o.Extract, "extract", "auto", "auto (by content), zip, tar, tar.gz, or none to keep the file as is.")
	flag.StringVar(&o.OutputName, "output-name", "",
		"File name when not extracting (default: the URL path's last segment).")
	flag.DurationVar(&o.WaitTimeout, "wait-timeout", 10*time.Minute,
		"How long to wait for the URL to appear, or for a new one after a 403.")
	flag.IntVar(&o.Retries, "retries", 5, "Failed attempts to retry, resuming where the last one stopped.")
	flag.DurationVar(&o.RetryDelay, "retry-delay", 2*time.Second, "First delay between attempts; doubles each time.")
	flag.DurationVar(&o.ProgressInterval, "progress-interval", 5*time.Second, "How often to log progress.")
	flag.Int64Var(&o.MaxBytes, "max-bytes", 50<<30, "Largest download, and largest extracted size, accepted.")
	flag.Parse()
	if o.URLFile == "" && o.URLEnv == "" {
		o.URLEnv = "SIGNED_URL"
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fetch.Run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "fetch: %v\n", err)
		os.Exit(1)
	}
}
