package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

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
