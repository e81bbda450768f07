package deploytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/manifests"
)

func init() {
	// The tests' own clients log nothing worth reading; the manager's log is what the tests check.
	logf.SetLogger(logr.Discard())
}

// releaseNamespace is where the renderings install the operator.
const releaseNamespace = "taskdownload-operator-system"

// tool returns a pinned tool from bin/, installed by the Makefile.
func tool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(envtestutil.RepoRoot(), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found at %s: run `make %s` (make test does)", name, p, name)
	}
	return p
}

// run runs a pinned tool from the repository's root and returns its standard output and error.
func run(t *testing.T, name string, args ...string) (stdout []byte, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = envtestutil.RepoRoot()
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.Output()
	if err != nil {
		// A plain error: Gomega would print an exec.ExitError's whole process state.
		err = fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), err.Error())
	}
	return out, errBuf.String(), err
}

// rendered caches what render printed, by command line: the tests render the same manifests often,
// and the tools' inputs do not change during a run.
var rendered sync.Map

// render runs a pinned tool that prints manifests and decodes them.
func render(t *testing.T, name string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	key := name + "\x00" + strings.Join(args, "\x00")
	if out, ok := rendered.Load(key); ok {
		return decode(t, out.([]byte))
	}
	out, stderr, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr)
	}
	rendered.Store(key, out)
	return decode(t, out)
}

// helmTemplate renders the chart as release "td" in the release namespace with extra helm arguments.
func helmTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	return render(t, "helm", templateArgs("td", append([]string{"--namespace", releaseNamespace}, args...)...)...)
}

// templateArgs are the arguments of `helm template release dist/chart args...` for the Kubernetes
// version the tests run on (bin/helm alone would assume the version of the client-go it was built with).
func templateArgs(release string, args ...string) []string {
	return append([]string{"template", release, "dist/chart", "--kube-version", envtestutil.K8sVersion}, args...)
}

func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetKind()]++
	}
	return out
}

// find returns the first object of kind that match accepts (nil accepts all).
func find(objs []*unstructured.Unstructured, kind string, match func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (match == nil || match(o)) {
			return o
		}
	}
	return nil
}

// all returns the objects of kind.
func all(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// named matches objects whose name ends with suffix: the renderings prefix names differently.
func named(suffix string) func(*unstructured.Unstructured) bool {
	return func(o *unstructured.Unstructured) bool {
		n := o.GetName()
		return n == suffix || len(n) > len(suffix) && n[len(n)-len(suffix)-1:] == "-"+suffix
	}
}

// managerContainer returns the container named manager of a Deployment's pod template.
func managerContainer(t *testing.T, deploy *unstructured.Unstructured) map[string]any {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		if m, ok := c.(map[string]any); ok && m["name"] == "manager" {
			return m
		}
	}
	t.Fatalf("Deployment %s has no container named manager", deploy.GetName())
	return nil
}

func stringSlice(m map[string]any, key string) []string {
	var out []string
	items, _ := m[key].([]any)
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
