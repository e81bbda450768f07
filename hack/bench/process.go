package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
)

// managerPprofAddr serves the manager's pprof profiles when BENCH_MANAGER_PROFILE is set.
const managerPprofAddr = "127.0.0.1:18081"

// profileManager writes a profile of the manager to path: CPU for the 8 s from now, or, with "heap",
// the live heap now.
func profileManager(path, kind string) {
	query := "profile?seconds=8"
	if kind == "heap" {
		query = "heap?gc=1"
	}
	hc := http.Client{Timeout: time.Minute}
	resp, err := hc.Get("http://" + managerPprofAddr + "/debug/pprof/" + query)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	saveProfile("manager", path, raw, err)
}

// profileAPIServer writes a CPU profile of the API server (8 s from now) to path, for `go tool pprof`.
func profileAPIServer(ctx context.Context, cs *kubernetes.Clientset, path string) {
	raw, err := cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "8").
		Timeout(time.Minute).DoRaw(ctx)
	saveProfile("API server", path, raw, err)
}

// saveProfile writes a fetched profile to path, or says why there is none.
func saveProfile(what, path string, raw []byte, err error) {
	if err == nil {
		err = os.WriteFile(path, raw, 0o644)
	}
	if err != nil {
		logf("%s profile: %v", what, err)
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// buildManager builds the manager into dir as the Dockerfile builds it (-trimpath, -s -w): the
// binary's mapped pages count in its RSS.
func buildManager(dir string) (string, error) {
	logf("building the manager")
	return managerproc.Build(dir, "-trimpath", "-ldflags=-s -w")
}

// startManager starts the manager with args, its output going to logPath.
func startManager(bin string, args []string, logPath string) (*managerproc.Process, error) {
	return managerproc.Start(bin, args, nil, logPath)
}

// explain adds the end of the manager's log to err.
func explain(m *managerproc.Process, err error) error {
	return fmt.Errorf("%w (manager log: %s)", err, tail(m.LogPath))
}
