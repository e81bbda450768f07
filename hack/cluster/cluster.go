package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Loopback ports the control plane listens on. The kubelet keeps its defaults (10250, 10248).
const (
	etcdClientPort = 12379
	etcdPeerPort   = 12380
	kcmPort        = 10257
	schedulerPort  = 10259
	nodeName       = "127.0.0.1"
	// pauseImage is the sandbox image, built by make e2e from test/e2e/images/pause.
	pauseImage = "e2e.local/pause"
)

// The node's two daemons, by the names of their binaries.
const (
	kubelet    = "kubelet"
	containerd = "containerd"
)

// Cluster is one single-node cluster, described by where it keeps its files.
type Cluster struct {
	State   string
	Logs    string
	BinDir  string
	APIPort int
	Images  []image

	st state
}

// state is what down needs: the processes up started, and the sysctls as they were before.
type state struct {
	PIDs    map[string]int    `json:"pids"`
	Sysctls map[string]string `json:"sysctls"`
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.State}, elem...)...)
}

func (c *Cluster) kubeconfig() string { return c.path("kubeconfig") }

func (c *Cluster) containerdSocket() string { return c.path("containerd", "containerd.sock") }

func (c *Cluster) saveState() error {
	b, err := json.MarshalIndent(c.st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.path("state.json"), b, 0o600)
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }

func (c *Cluster) logFile(name string) string { return filepath.Join(c.Logs, name+".log") }

func (c *Cluster) clientset() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[cluster] "+format+"\n", args...)
}
