//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// leaseName is the manager's leader election Lease (cmd/main.go).
const leaseName = "taskdownload-operator.pixxel.space"

// The scenarios run in this order; each installs what it needs (useInstall), so that switching
// between install.yaml and the chart happens as rarely as possible.

// 1. Install from the release: install.yaml, applied server-side.
func TestInstallFromRelease(t *testing.T) {
	useInstall(t, kubectlInstall)
	pod := managerPod(t)

	t.Run("runs as 65532 with a read-only root filesystem", func(t *testing.T) {
		// Not the pod spec's word for it: a process beside the manager reads the manager's own
		// credentials and root mount from /proc, as the kernel sees them.
		out := inspectProcess(t, pod, "manager")
		for _, want := range []string{"uid=65532", "gid=65532", "root=ro"} {
			if !strings.Contains(out, want) {
				t.Errorf("the manager process: want %s, got %q", want, out)
			}
		}
	})

	t.Run("liveness and readiness probes pass under the kubelet", func(t *testing.T) {
		// The liveness probe first runs 15 s after start, then every 20 s: wait for two of them.
		poll(t, 2*time.Minute, "the manager running for 40 s", func(ctx context.Context) (bool, string) {
			p := managerPod(t)
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == "manager" && cs.State.Running != nil {
					up := time.Since(cs.State.Running.StartedAt.Time)
					return up > 40*time.Second, fmt.Sprintf("up %s", up.Round(time.Second))
				}
			}
			return false, "not running"
		})
		p := managerPod(t)
		if !podReady(p) {
			t.Errorf("manager pod %s is not Ready", p.Name)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				t.Errorf("container %s restarted %d times", cs.Name, cs.RestartCount)
			}
		}
		for _, e := range eventsFor(t, operatorNamespace, "Pod", p.Name) {
			if strings.HasPrefix(e, "Unhealthy") || strings.HasPrefix(e, "BackOff") {
				t.Errorf("the kubelet reported: %s", e)
			}
		}
	})

	t.Run("the leader Lease is held in its namespace", func(t *testing.T) {
		lease := &coordinationv1.Lease{}
		poll(t, time.Minute, "the Lease held", func(ctx context.Context) (bool, string) {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, lease); err != nil {
				return false, err.Error()
			}
			holder := ptr.Deref(lease.Spec.HolderIdentity, "")
			duration := time.Duration(ptr.Deref(lease.Spec.LeaseDurationSeconds, 15)) * time.Second
			renewed := lease.Spec.RenewTime != nil && time.Since(lease.Spec.RenewTime.Time) < duration
			return holder != "" && renewed, fmt.Sprintf("holder=%q renew=%v", holder, lease.Spec.RenewTime)
		})
		t.Logf("Lease %s/%s held by %s", operatorNamespace, leaseName, *lease.Spec.HolderIdentity)
	})
}

// 2. The user's path: a TaskDownload and the sample Job, whose fetch init container downloads and
// extracts the package under the kubelet and whose main container checks every file.
func TestUserPath(t *testing.T) {
	useInstall(t, kubectlInstall)
	userPath(t, team(t, "e2e-user"))
}

func userPath(t *testing.T, ns string) {
	t.Helper()
	td, job := sample(t, "taskdownload_job_fetch.yaml")
	td.Namespace = ns
	task := taskOf(td)
	url := platform.SignedURLFor(task)
	platform.Script(task, fakepixxel.Pending(), fakepixxel.Pending(), fakepixxel.Ready(url))
	before := storage.requests.Load()

	create(t, td)
	forThisCluster(job, ns)
	create(t, job)
	ready := waitReady(t, client.ObjectKeyFromObject(td), 3*time.Minute)
	if got := platform.Calls(task); got != 3 {
		t.Errorf("platform calls for %s: got %d, want 3 (two pending answers, then ready)", task.TaskID, got)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ready.Spec.Target.Name}}
	if !exists(t, cm) || cm.Data["SIGNED_URL"] != url {
		t.Fatalf("ConfigMap target %s: want SIGNED_URL published", cm.Name)
	}

	waitJobComplete(t, job, 5*time.Minute)
	pod := jobPod(t, job)
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Errorf("pod %s: phase %s, want Succeeded", pod.Name, pod.Status.Phase)
	}
	if code := exitCode(pod.Status.InitContainerStatuses, "fetch"); code != 0 {
		t.Errorf("fetch exited %d, want 0", code)
	}
	if code := exitCode(pod.Status.ContainerStatuses, "process"); code != 0 {
		t.Errorf("the checker exited %d, want 0", code)
	}
	out := logs(t, ns, pod.Name, "process")
	if want := fmt.Sprintf("all %d files match", len(storage.files)); !strings.Contains(out, want) {
		t.Errorf("checker: want %q, got:\n%s", want, out)
	}
	if storage.requests.Load() == before {
		t.Error("the storage server saw no download")
	}
	t.Logf("Job %s Completed; the checker said:\n%s", job.Name, out)
}

// 4. Garbage collection: deleting TaskDownloads lets the real garbage collector remove their
// ConfigMap and Secret targets, and nothing else.
func TestGarbageCollection(t *testing.T) {
	useInstall(t, kubectlInstall)
	ns := team(t, "e2e-gc")
	createUnrelated(t, ns)
	tds := make([]*v1alpha1.TaskDownload, 0, len(target.Kinds()))
	targets := make([]client.Object, 0, len(target.Kinds()))
	published := make([]string, 0, len(target.Kinds())) // as namesIn names them
	for _, k := range target.Kinds() {
		name := "gc-" + strings.ToLower(string(k.TargetKind()))
		td := taskDownload(ns, name, "task-"+name, &v1alpha1.Target{Kind: k.TargetKind()})
		create(t, td)
		tds = append(tds, td)
		obj := k.New()
		obj.SetNamespace(ns)
		obj.SetName(name)
		targets = append(targets, obj)
		published = append(published, string(k.TargetKind())+"/"+name)
	}
	for _, td := range tds {
		waitReady(t, client.ObjectKeyFromObject(td), 2*time.Minute)
	}
	for _, obj := range targets {
		if !exists(t, obj) {
			t.Fatalf("target %T %s was not created", obj, obj.GetName())
		}
		if ref := metav1.GetControllerOf(obj); ref == nil || ref.Kind != "TaskDownload" {
			t.Fatalf("target %s has no TaskDownload controller reference", obj.GetName())
		}
	}
	others := namesIn(t, ns)

	for _, td := range tds {
		if err := k8s.Delete(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	for _, obj := range targets {
		waitGone(t, obj, 2*time.Minute)
	}
	after := namesIn(t, ns)
	for _, name := range others {
		if slices.Contains(published, name) {
			continue
		}
		if !slices.Contains(after, name) {
			t.Errorf("%s was deleted with the TaskDownloads", name)
		}
	}
}

// 8. Metrics under real RBAC: /metrics answers a token bound to metrics-reader, and no one else.
func TestMetricsUnderRBAC(t *testing.T) {
	useInstall(t, kubectlInstall)
	ns := team(t, "e2e-metrics")
	pod := managerPod(t)
	url := fmt.Sprintf("https://%s/metrics", net.JoinHostPort(pod.Status.PodIP, "8443"))

	reader := serviceAccountToken(t, ns, "scraper")
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-metrics-scraper"},
		RoleRef: rbacv1.RoleRef{
			APIGroup: rbacv1.GroupName,
			Kind:     "ClusterRole",
			Name:     "taskdownload-operator-metrics-reader",
		},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "scraper"}},
	}
	create(t, crb)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), crb) })
	stranger := serviceAccountToken(t, ns, "stranger")

	// The authorizer caches decisions for a short while; ask until the binding counts.
	var body string
	poll(t, time.Minute, "metrics with the metrics-reader token", func(context.Context) (bool, string) {
		code, b := scrape(url, reader)
		body = b
		return code == http.StatusOK, fmt.Sprintf("HTTP %d", code)
	})
	if !strings.Contains(body, "taskdownload_") {
		t.Errorf("the metrics have no taskdownload_ series:\n%.500s", body)
	}
	if code, _ := scrape(url, ""); code != http.StatusUnauthorized {
		t.Errorf("without a token: HTTP %d, want 401", code)
	}
	// Not 500: controller-runtime's filter answers 500 (and logs an error) for a token the API server
	// rejects; internal/metricsauth answers 401, as the API server does.
	if code, _ := scrape(url, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("with an invalid token: HTTP %d, want 401", code)
	}
	if code, _ := scrape(url, stranger); code != http.StatusForbidden {
		t.Errorf("with a ServiceAccount not bound to metrics-reader: HTTP %d, want 403", code)
	}
}

// createUnrelated creates a ConfigMap and a Secret named "unrelated", which nothing the operator does
// may delete.
func createUnrelated(t *testing.T, ns string) {
	t.Helper()
	meta := metav1.ObjectMeta{Namespace: ns, Name: "unrelated"}
	create(t, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"a": "b"}})
	create(t, &corev1.Secret{ObjectMeta: meta, StringData: map[string]string{"a": "b"}})
}

// serviceAccountToken creates a ServiceAccount and returns a token for it (TokenRequest).
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
		}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// scrape GETs the metrics endpoint (its certificate is the manager's own, self-signed).
func scrape(url, token string) (int, string) {
	c := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	} //nolint:gosec // the manager's self-signed serving certificate
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// taskDownload is a TaskDownload of the team's key for one task of the e2e workflow.
func taskDownload(ns, name, taskID string, to *v1alpha1.Target) *v1alpha1.TaskDownload {
	return &v1alpha1.TaskDownload{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TaskDownloadSpec{
			WorkflowID: "wf-e2e", JobID: "job-e2e", TaskID: v1alpha1.ResourceID(taskID),
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "pixxel-api-key"},
			Target:          to,
		},
	}
}

// namesIn lists the objects of every target kind (ConfigMaps, Secrets) in a namespace, as Kind/name.
func namesIn(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	for _, k := range target.Kinds() {
		list := target.MetadataList(k)
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			names = append(names, string(k.TargetKind())+"/"+o.Name)
		}
	}
	return names
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// inspectProcess runs the checker as an ephemeral container beside container (sharing its process
// namespace) and returns what it read of that container's first process.
func inspectProcess(t *testing.T, pod *corev1.Pod, container string) string {
	t.Helper()
	name := fmt.Sprintf("inspect-%d", time.Now().Unix()%100000)
	p := pod.DeepCopy()
	p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
		TargetContainerName: container,
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: name, Image: env.checkerImage, ImagePullPolicy: corev1.PullNever,
			Command: []string{"/checker", "--inspect-pid=1"},
			SecurityContext: &corev1.SecurityContext{
				RunAsUser: new(int64(65532)), RunAsNonRoot: new(true), AllowPrivilegeEscalation: new(false),
				ReadOnlyRootFilesystem: new(true),
				Capabilities:           &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		},
	})
	pods := clientset.CoreV1().Pods(p.Namespace)
	if _, err := pods.UpdateEphemeralContainers(context.Background(), p.Name, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("adding an ephemeral container to %s: %v", p.Name, err)
	}
	poll(t, time.Minute, "the ephemeral container to finish", func(ctx context.Context) (bool, string) {
		cur := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), cur); err != nil {
			return false, err.Error()
		}
		for _, cs := range cur.Status.EphemeralContainerStatuses {
			if cs.Name == name {
				return cs.State.Terminated != nil, stateOf(cs.State)
			}
		}
		return false, "no status yet"
	})
	return logs(t, pod.Namespace, pod.Name, name)
}

// killContainer kills a container with SIGKILL through the container runtime (E2E_KILL_CONTAINER
// followed by the container's ID), as an OOM kill or a crash would.
func killContainer(t *testing.T, containerID string) {
	t.Helper()
	if env.killCmd == "" {
		t.Skip("E2E_KILL_CONTAINER is not set: no way to reach this cluster's container runtime")
	}
	_, id, _ := strings.Cut(containerID, "://")
	args := append(strings.Fields(env.killCmd), id)
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}
