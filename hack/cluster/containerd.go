package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

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

// removeContainers stops and deletes every container and sandbox through containerd, while it runs.
func (c *Cluster) removeContainers() {
	out, err := c.ctrOutput("tasks", "ls", "-q")
	if err == nil {
		for id := range strings.FieldsSeq(out) {
			_ = c.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", id)
		}
		for id := range strings.FieldsSeq(out) {
			_ = c.ctr("tasks", "delete", "--force", id)
		}
	}
	if out, err := c.ctrOutput("containers", "ls", "-q"); err == nil {
		for id := range strings.FieldsSeq(out) {
			_ = c.ctr("containers", "delete", id)
		}
	}
}

// killShims stops containerd's shims for this cluster: they outlive containerd by design, and are
// recognised by the socket address containerd gave them.
func (c *Cluster) killShims() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") &&
			strings.Contains(string(cmdline), c.containerdSocket()) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
