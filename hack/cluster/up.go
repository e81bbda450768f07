package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
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

// Up starts the cluster and returns once the node is Ready. On failure it leaves state.json behind,
// so that down can remove what was started.
func (c *Cluster) Up(ctx context.Context) error {
	start := time.Now()
	if err := preflight(); err != nil {
		return err
	}
	if _, err := os.Stat(c.path("state.json")); err == nil {
		logf("a cluster from an earlier run is still here; taking it down first")
		if err := c.Down(); err != nil {
			return err
		}
	}
	dirs := []string{
		c.State, c.Logs, c.path("etcd"), c.path(containerd), c.path("cni"), c.path(kubelet), c.path("pod-logs"),
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	c.st = state{PIDs: map[string]int{}, Sysctls: readSysctls()}
	if err := c.saveState(); err != nil {
		return err
	}
	p, err := c.writePKI()
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}

	if err := c.start("etcd", c.bin("etcd"),
		"--name=e2e", "--data-dir="+c.path("etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdClientPort),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdClientPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeerPort),
		fmt.Sprintf("--initial-cluster=e2e=http://127.0.0.1:%d", etcdPeerPort),
		"--listen-metrics-urls=", "--unsafe-no-fsync=true", "--log-level=warn",
	); err != nil {
		return err
	}
	etcdHealth := fmt.Sprintf("http://127.0.0.1:%d/health", etcdClientPort)
	if err := c.waitHTTP(ctx, "etcd", etcdHealth, 60*time.Second); err != nil {
		return fmt.Errorf("etcd: %w (log: %s)", err, c.logFile("etcd"))
	}

	if err := c.start("kube-apiserver", c.bin("kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClientPort),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", c.APIPort),
		// Without an advertised non-loopback address the kubernetes Service cannot have endpoints;
		// nothing here dials it (clients get KUBERNETES_SERVICE_HOST=127.0.0.1).
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		// Admission webhooks are called at an endpoint of their Service (here a hostNetwork pod on
		// 127.0.0.1), not at its ClusterIP, which nothing routes.
		"--enable-aggregator-routing=true",
		"--allow-privileged=true", "--profiling=false", "--v=1",
	); err != nil {
		return err
	}
	cs, err := c.clientset()
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver", 120*time.Second, func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return fmt.Errorf("kube-apiserver not ready: %w (log: %s)", err, c.logFile("kube-apiserver"))
	}

	if err := c.start("kube-controller-manager", c.bin("kube-controller-manager"),
		"--kubeconfig="+c.path("controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+c.path("controller-manager.kubeconfig"),
		"--authorization-kubeconfig="+c.path("controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", kcmPort),
		"--service-account-private-key-file="+p.path("sa.key"), "--root-ca-file="+p.path("ca.crt"),
		"--cluster-signing-cert-file="+p.path("ca.crt"), "--cluster-signing-key-file="+p.path("ca.key"),
		"--use-service-account-credentials=true", "--leader-elect=false",
		"--profiling=false", "--v=1",
	); err != nil {
		return err
	}
	if err := c.start("kube-scheduler", c.bin("kube-scheduler"),
		"--kubeconfig="+c.path("scheduler.kubeconfig"),
		"--authentication-kubeconfig="+c.path("scheduler.kubeconfig"),
		"--authorization-kubeconfig="+c.path("scheduler.kubeconfig"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", schedulerPort),
		"--leader-elect=false", "--profiling=false", "--v=1",
	); err != nil {
		return err
	}

	if err := c.writeContainerdConfig(); err != nil {
		return err
	}
	if err := c.start(containerd, containerd, "--config="+c.path("containerd", "config.toml")); err != nil {
		return err
	}
	if err := c.waitFor(ctx, containerd, 60*time.Second, func(context.Context) (bool, error) {
		return c.ctr("version") == nil, nil
	}); err != nil {
		return fmt.Errorf("containerd: %w (log: %s)", err, c.logFile("containerd"))
	}
	for _, img := range c.Images {
		if err := c.importImage(img.Name, img.Dir); err != nil {
			return err
		}
	}

	if err := c.writeKubeletConfig(p); err != nil {
		return err
	}
	if err := c.start("kubelet", c.bin("kubelet"),
		"--config="+c.path("kubelet.yaml"), "--kubeconfig="+c.path("kubelet.kubeconfig"),
		"--root-dir="+c.path("kubelet"), "--cert-dir="+c.path("kubelet", "pki"),
		// The kubelet refuses a loopback --node-ip; as the node's name, 127.0.0.1 also becomes
		// its InternalIP, which is where probes and hostNetwork pods are reached.
		"--hostname-override="+nodeName, "--v=1",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, kubelet, 120*time.Second, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}); err != nil {
		return fmt.Errorf("node %s not Ready: %w (log: %s)", nodeName, err, c.logFile("kubelet"))
	}
	// Pods in the default namespace need its ServiceAccount, which the controller manager makes.
	if err := c.waitFor(ctx, "kube-controller-manager", 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf(
			"the default ServiceAccount did not appear: %w (log: %s)",
			err,
			c.logFile("kube-controller-manager"),
		)
	}
	logf("node %s Ready %.1fs after start; KUBECONFIG=%s", nodeName, time.Since(start).Seconds(), c.kubeconfig())
	return nil
}

// preflight checks what a node needs of this machine: root, and the runtime's OS packages.
func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New(
			"the kubelet and containerd need root: run make e2e as root, " +
				"or point KUBECONFIG at a cluster and run make e2e CLUSTER=existing",
		)
	}
	return ensurePackages()
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

func (c *Cluster) writePKI() (*pki, error) {
	p, err := newPKI(c.path("pki"))
	if err != nil {
		return nil, err
	}
	lo := []net.IP{net.ParseIP("127.0.0.1")}
	ids := []identity{
		{file: "apiserver", cn: "kube-apiserver", server: true,
			// 10.0.0.1 is the kubernetes Service's ClusterIP: in the certificate, never dialled.
			ips: []net.IP{lo[0], net.ParseIP("10.0.0.1")},
			dns: []string{
				"localhost",
				"kubernetes",
				"kubernetes.default",
				"kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local",
			}},
		{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
		{file: "admin", cn: "e2e-admin", orgs: []string{"system:masters"}},
		{file: "controller-manager", cn: "system:kube-controller-manager"},
		{file: "scheduler", cn: "system:kube-scheduler"},
		{file: "kubelet", cn: "system:node:" + nodeName, orgs: []string{"system:nodes"}},
		{file: "kubelet-serving", cn: nodeName, server: true, ips: lo, dns: []string{"localhost"}},
	}
	for _, id := range ids {
		if err := p.issue(id); err != nil {
			return nil, err
		}
	}
	if err := p.serviceAccountKey(); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", c.APIPort)
	for file, kc := range map[string]string{
		"admin": c.kubeconfig(), "controller-manager": c.path("controller-manager.kubeconfig"),
		"scheduler": c.path("scheduler.kubeconfig"), "kubelet": c.path("kubelet.kubeconfig"),
	} {
		if err := p.kubeconfig(kc, file, server); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (c *Cluster) writeContainerdConfig() error {
	cni := c.path("cni", "net.d")
	if err := os.MkdirAll(cni, 0o755); err != nil {
		return err
	}
	// Only the loopback plugin: the node is Ready, and no pod gets a network of its own.
	if err := os.WriteFile(filepath.Join(cni, "10-loopback.conflist"),
		[]byte(`{"cniVersion": "0.4.0", "name": "loopback-only", "plugins": [{"type": "loopback"}]}`+"\n"),
		0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%s:e2e"
  # The VM withholds CAP_SYS_RESOURCE: without this runc fails writing oom_score_adj.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, c.path("containerd", "root"), c.path("containerd", "state"), c.containerdSocket(),
		c.path("containerd", "opt"), pauseImage, c.path("containerd", "runc"), cniBinDir(), cni)
	return os.WriteFile(c.path("containerd", "config.toml"), []byte(cfg), 0o644)
}

func (c *Cluster) writeKubeletConfig(p *pki) error {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
# This machine mounts cgroup v1 and has no systemd to delegate to.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# A shared machine's disk and memory are not this node's: evict only when nearly exhausted.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, nodefs.inodesFree: 1%%, imagefs.available: 1%%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
serializeImagePulls: false
# Status reaches the API server soon after a container changes, so that tests wait less.
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
`, c.containerdSocket(), c.path("pod-logs"), p.path("kubelet-serving.crt"), p.path("kubelet-serving.key"),
		p.path("ca.crt"))
	return os.WriteFile(c.path("kubelet.yaml"), []byte(cfg), 0o644)
}

// ctrArgs points ctr at this cluster's containerd, in the CRI's namespace.
func (c *Cluster) ctrArgs(args []string) []string {
	return append([]string{"--address", c.containerdSocket(), "--namespace", "k8s.io"}, args...)
}

// ctr runs ctr against this cluster's containerd, in the CRI's namespace.
func (c *Cluster) ctr(args ...string) error {
	out, err := exec.Command("ctr", c.ctrArgs(args)...).
		CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) ctrOutput(args ...string) (string, error) {
	out, err := exec.Command("ctr", c.ctrArgs(args)...).
		Output()
	return string(out), err
}

// importImage imports the OCI image layout dir as name:<its ref.name annotation>.
func (c *Cluster) importImage(name, dir string) error {
	tarball, err := tarLayout(dir)
	if err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	defer func() { _ = os.Remove(tarball) }()
	if err := c.ctr("images", "import", "--base-name", name, "--no-unpack=false", tarball); err != nil {
		return err
	}
	ref := name + ":" + refName(dir)
	out, _ := c.ctrOutput("images", "ls", "-q")
	if !slices.Contains(strings.Fields(out), ref) {
		return fmt.Errorf(
			"image %s: imported, but containerd lists no %s (images: %s)",
			dir,
			ref,
			strings.Join(strings.Fields(out), ", "),
		)
	}
	logf("imported %s", ref)
	return nil
}

// refName is the tag an OCI image layout's index.json records for its image.
func refName(dir string) string {
	var index struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || json.Unmarshal(b, &index) != nil || len(index.Manifests) == 0 {
		return "latest"
	}
	return index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
}

// start runs a component in its own process group (so that Ctrl-C reaches only make and the tests,
// and down stops it), its output in the logs directory, and records its PID.
func (c *Cluster) start(name, bin string, args ...string) error {
	log, err := os.Create(c.logFile(name))
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = newProcessGroup()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	c.st.PIDs[name] = cmd.Process.Pid
	logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, c.logFile(name))
	// The process outlives this command: release it instead of waiting.
	_ = cmd.Process.Release()
	return c.saveState()
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, timeout time.Duration) error {
	return c.waitFor(ctx, name, timeout, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// waitFor polls cond until it holds, and gives up at once when the component it waits for has exited
// (the kube-scheduler must run too by the time the node is Ready).
func (c *Cluster) waitFor(
	ctx context.Context,
	name string,
	timeout time.Duration,
	cond wait.ConditionWithContextFunc,
) error {
	return wait.PollUntilContextTimeout(
		ctx,
		250*time.Millisecond,
		timeout,
		true,
		func(ctx context.Context) (bool, error) {
			for component, pid := range c.st.PIDs {
				if !alive(pid) {
					return false, fmt.Errorf(
						"waiting for %s: %s exited (log: %s)",
						name,
						component,
						c.logFile(component),
					)
				}
			}
			return cond(ctx)
		},
	)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[cluster] "+format+"\n", args...)
}

// kernelTunables are the sysctls the kubelet sets at start (setupKernelTunables); down puts back
// what they were.
var kernelTunables = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

func readSysctls() map[string]string {
	out := map[string]string{}
	for _, k := range kernelTunables {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			out[k] = strings.TrimSpace(string(b))
		}
	}
	return out
}

func restoreSysctls(values map[string]string) {
	for k, v := range values {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			logf("restoring sysctl %s=%s: %v", k, v, err)
		}
	}
}
