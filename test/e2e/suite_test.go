//go:build e2e

// Package e2e is the end-to-end suite: the released operator installed as pods on a real cluster,
// with a real kubelet, scheduler and garbage collector. make e2e builds a single-node cluster on this
// machine and runs it there; make e2e CLUSTER=existing runs it against $KUBECONFIG (docs/e2e.md).
//
// The platform API is the only thing faked: the project's fake (internal/testsupport/fakepixxel)
// runs in this process, and so does a storage server that serves a real package. Both listen on
// E2E_HOST_ADDR (127.0.0.1), which pods reach through hostNetwork.
package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// env is the suite's configuration, from the environment hack/e2e/run.sh sets.
var env struct {
	releaseDir   string // make release output: install.yaml, the chart package
	image        string // the operator image of the release, as the cluster knows it
	imageNext    string // a newer build of it (upgrade)
	checkerImage string // test/e2e/images/checker
	kubectl      string
	kustomize    string
	helm         string
	apiHost      string // KUBERNETES_SERVICE_HOST for in-cluster clients, when set
	apiPort      string
	hostAddr     string // where pods reach this process (hostNetwork)
	killCmd      string // kills a container by runtime ID, through the runtime
}

var (
	cfg       *rest.Config
	k8s       client.Client
	clientset *kubernetes.Clientset
	platform  *fakepixxel.Server
	storage   *packageServer
	// The API key every team's Secret holds; the fake refuses any other.
	apiKey = "e2e-" + randomHex(16)
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	env.releaseDir = mustEnv("E2E_RELEASE_DIR")
	env.image = mustEnv("E2E_IMAGE")
	env.imageNext = os.Getenv("E2E_IMAGE_NEXT")
	env.checkerImage = mustEnv("E2E_CHECKER_IMAGE")
	env.kubectl = envOr("E2E_KUBECTL", "kubectl")
	env.kustomize = envOr("E2E_KUSTOMIZE", "kustomize")
	env.helm = envOr("E2E_HELM", "helm")
	env.apiHost, env.apiPort = os.Getenv("E2E_APISERVER_HOST"), os.Getenv("E2E_APISERVER_PORT")
	env.hostAddr = envOr("E2E_HOST_ADDR", "127.0.0.1")
	env.killCmd = os.Getenv("E2E_KILL_CONTAINER")

	var err error
	cfg, err = clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: KUBECONFIG: %v\n", err)
		return 1
	}
	cfg.QPS, cfg.Burst = 100, 200
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	clientset = kubernetes.NewForConfigOrDie(cfg)

	if storage, err = newPackageServer(env.hostAddr); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: storage server: %v\n", err)
		return 1
	}
	defer func() { _ = storage.Close() }()
	platform = fakepixxel.NewUnstarted()
	l, err := net.Listen("tcp", net.JoinHostPort(env.hostAddr, "0"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: fake platform: %v\n", err)
		return 1
	}
	_ = platform.Listener.Close()
	platform.Listener = l
	platform.Start()
	defer platform.Close()
	platform.RequireAPIKey(apiKey)
	platform.SetPackages(storage.URL + "/packages/{w}/{j}/{t}.tar.gz")
	fmt.Printf("e2e: fake platform at %s, storage at %s\n", platform.URL, storage.URL)

	code := m.Run()
	if code != 0 {
		dumpState()
	}
	return code
}

// packageServer is the object storage the signed URLs point at: it serves one tar.gz package, with
// an ETag and Range support, to any path that carries a signature.
type packageServer struct {
	*http.Server
	URL      string
	body     []byte
	files    map[string]string // path in the package -> SHA-256
	requests atomic.Int64
	etag     string
}

func newPackageServer(addr string) (*packageServer, error) {
	body, files, err := buildPackage()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	s := &packageServer{
		URL:   "http://" + l.Addr().String(),
		body:  body,
		files: files,
		etag:  `"` + hex.EncodeToString(sum[:16]) + `"`,
	}
	s.Server = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.Serve(l) }()
	return s, nil
}

func (s *packageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.URL.Query().Get("X-Amz-Signature") == "" {
		http.Error(w, "AccessDenied: no signature", http.StatusForbidden)
		return
	}
	w.Header().Set("ETag", s.etag)
	w.Header().Set("Content-Type", "application/gzip")
	http.ServeContent(w, r, "", packaged, bytes.NewReader(s.body))
}

// expectArgs are the checker's --expect flags for every file of the package.
func (s *packageServer) expectArgs() []string {
	args := make([]string, 0, len(s.files))
	for name, sum := range s.files {
		args = append(args, "--expect="+name+"="+sum)
	}
	slices.Sort(args)
	return args
}

// packaged is the package's time, as its files and the storage server's Last-Modified say.
var packaged = time.Unix(1_790_000_000, 0)

// buildPackage makes a tar.gz of several files (random imagery bands, metadata) and their SHA-256.
func buildPackage() ([]byte, map[string]string, error) {
	files := map[string][]byte{
		"scene/band-1.tif":    randomBytes(3 << 20),
		"scene/band-2.tif":    randomBytes(1 << 20),
		"scene/metadata.json": []byte(`{"scene":"e2e","bands":2}` + "\n"),
		"README.txt":          []byte("A task package served by the e2e suite's storage server.\n"),
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	sums := map[string]string{}
	dirs := map[string]bool{}
	for _, n := range names {
		if d := filepath.Dir(n); d != "." && !dirs[d] {
			dirs[d] = true
			h := &tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: packaged}
			if err := tw.WriteHeader(h); err != nil {
				return nil, nil, err
			}
		}
		body := files[n]
		h := &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: packaged}
		if err := tw.WriteHeader(h); err != nil {
			return nil, nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, nil, err
		}
		sum := sha256.Sum256(body)
		sums[n] = hex.EncodeToString(sum[:])
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), sums, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func mustEnv(key string) string {
	v := os.Getenv(key)
	if v == "" {
		fmt.Fprintf(os.Stderr, "e2e: %s is not set; run the suite with make e2e (docs/e2e.md)\n", key)
		os.Exit(2)
	}
	return v
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
