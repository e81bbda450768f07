package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Up starts the cluster and returns once the node is Ready. On failure it leaves state.json behind,
// so that down can remove what was started.
func (c *Cluster) Up(ctx context.Context) error {
	start := time.Now()
	if err := c.prepare(); err != nil {
		return err
	}
	p, err := c.writePKI()
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	cs, err := c.startAPIServer(ctx, p)
	if err != nil {
		return err
	}
	if err := c.startControlLoops(p); err != nil {
		return err
	}
	if err := c.startContainerd(ctx); err != nil {
		return err
	}
	if err := c.startKubelet(ctx, p, cs); err != nil {
		return err
	}
	if err := c.waitForDefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	logf("node %s Ready %.1fs after start; KUBECONFIG=%s", nodeName, time.Since(start).Seconds(), c.kubeconfig())
	return nil
}

// prepare checks the machine, takes down what an earlier run left, and makes the directories and
// state.json.
func (c *Cluster) prepare() error {
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
	return c.saveState()
}

// startEtcd starts etcd and waits until it is healthy.
func (c *Cluster) startEtcd(ctx context.Context) error {
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
	return nil
}

// startAPIServer starts kube-apiserver and waits until it is ready; it returns a client of it.
func (c *Cluster) startAPIServer(ctx context.Context, p *pki) (*kubernetes.Clientset, error) {
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
		return nil, err
	}
	cs, err := c.clientset()
	if err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "kube-apiserver", 120*time.Second, func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return nil, fmt.Errorf("kube-apiserver not ready: %w (log: %s)", err, c.logFile("kube-apiserver"))
	}
	return cs, nil
}

// startControlLoops starts kube-controller-manager and kube-scheduler.
func (c *Cluster) startControlLoops(p *pki) error {
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
	return nil
}

// startContainerd configures and starts containerd, and imports the images into it.
func (c *Cluster) startContainerd(ctx context.Context) error {
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
	return nil
}

// startKubelet configures and starts the kubelet, and waits until the node is Ready.
func (c *Cluster) startKubelet(ctx context.Context, p *pki, cs *kubernetes.Clientset) error {
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
	return nil
}

// waitForDefaultServiceAccount waits for the ServiceAccount that pods in the default namespace need,
// which the controller manager makes.
func (c *Cluster) waitForDefaultServiceAccount(ctx context.Context, cs *kubernetes.Clientset) error {
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
