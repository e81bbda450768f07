// Package envtestutil starts a real kube-apiserver and etcd (envtest) with the operator's CRDs installed.
package envtestutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

// K8sVersion is the Kubernetes version the tests run against.
const K8sVersion = "1.37.2"

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// AssetsDir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS, else
// setup-envtest's store, where hack/envtest-binaries.sh puts them.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".local", "share")
	}
	dir := filepath.Join(base, "kubebuilder-envtest", "k8s", fmt.Sprintf("%s-%s-%s", K8sVersion, runtime.GOOS, runtime.GOARCH))
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", errors.New("envtest binaries not found: run `make test` (or hack/envtest-binaries.sh) once to provide kube-apiserver and etcd")
	}
	return dir, nil
}

// Start starts kube-apiserver and etcd with the CRDs from config/crd/bases installed. Options may
// adjust the environment before it starts. The environment's stop is registered with teardown, so that a
// command that called teardown.Start stops it on SIGINT or SIGTERM.
func Start(opts ...func(*envtest.Environment)) (*envtest.Environment, *rest.Config, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: dir,
	}
	for _, o := range opts {
		o(env)
	}
	// Registered before it starts: a signal during the start stops what has started so far.
	teardown.Add(func() { _ = env.Stop() })
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting envtest: %w", err)
	}
	return env, cfg, nil
}

// Unthrottled returns a copy of cfg without client-side rate limiting, for clients that measure or
// load the API server itself.
func Unthrottled(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, 0
	return c
}

// WriteKubeconfig adds a cluster-admin user to the environment and writes its kubeconfig into dir,
// for processes (a manager binary, kubectl) that talk to the test API server.
func WriteKubeconfig(env *envtest.Environment, dir, user string) (string, error) {
	u, err := env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}
