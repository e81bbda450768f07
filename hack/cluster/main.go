// Command cluster runs a single-node Kubernetes cluster on this machine for make e2e, from upstream
// parts: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubelet 1.37 (built from the
// Go module proxy by hack/envtest-binaries.sh), containerd and runc from the OS packages.
//
// Every address it uses is on loopback: the node is 127.0.0.1, the API server listens on
// 127.0.0.1:6443, and there is no kube-proxy, no bridge and no pod network (CNI has only the
// loopback plugin). Pods that talk to anything must use hostNetwork.
//
//	cluster up    [--state DIR] [--logs DIR] [--image NAME=OCI-LAYOUT ...]
//	cluster down  [--state DIR]
//	cluster preflight   (root; containerd, runc and the CNI plugins, installed with apt-get when missing)
//
// up writes DIR/kubeconfig and DIR/state.json (the PIDs it started, the sysctls it found). down stops
// only those PIDs, removes the containers, mounts, cgroups and iptables chains the node made, restores
// the sysctls and removes DIR; it is safe to run twice, or after a failed up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
		os.Exit(1)
	}
}

// image is an OCI image layout to import, and the repository to import it as.
type image struct{ Name, Dir string }

// imageFlags collects --image NAME=LAYOUT pairs; one name may come with several layouts (tags).
type imageFlags []image

func (f *imageFlags) String() string { return fmt.Sprint(*f) }

func (f *imageFlags) Set(s string) error {
	name, dir, ok := strings.Cut(s, "=")
	if !ok || name == "" || dir == "" {
		return fmt.Errorf("--image %q: want NAME=OCI-LAYOUT-DIR", s)
	}
	*f = append(*f, image{Name: name, Dir: dir})
	return nil
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: cluster up|down|preflight [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	var images imageFlags
	var c Cluster
	fs.StringVar(&c.State, "state", envOr("E2E_STATE", "/var/lib/taskdownload-e2e"),
		"Directory for the cluster's data (removed by down).")
	fs.StringVar(
		&c.Logs,
		"logs",
		envOr("E2E_LOGS", "bin/e2e/logs"),
		"Directory for the components' logs (kept by down).",
	)
	fs.StringVar(&c.BinDir, "bin-dir", os.Getenv("E2E_BIN_DIR"),
		"Directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubelet.")
	fs.IntVar(&c.APIPort, "apiserver-port", 6443, "Port of the API server on 127.0.0.1.")
	fs.Var(&images, "image", "NAME=DIR: import the OCI image layout DIR as NAME (repeatable; up only).")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var err error
	if c.State, err = filepath.Abs(c.State); err != nil {
		return err
	}
	if c.Logs, err = filepath.Abs(c.Logs); err != nil {
		return err
	}
	switch args[0] {
	case "up":
		if c.BinDir == "" {
			return errors.New("up: --bin-dir (or E2E_BIN_DIR) is required")
		}
		c.Images = images
		return c.Up(ctx)
	case "down":
		return c.Down()
	case "preflight":
		return preflight()
	default:
		return fmt.Errorf("unknown command %q: want up, down or preflight", args[0])
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
