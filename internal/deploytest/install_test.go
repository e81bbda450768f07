package deploytest

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// The namespaces where users create TaskDownloads: the namespaced rendering watches the first two.
var teamNamespaces = []string{"team-a", "team-b", "team-c"}

const apiKey = "deploytest-api-key"

// installation is one way users install the operator.
type installation struct {
	name    string
	objects func(t *testing.T) []*unstructured.Unstructured
	// watched are the namespaces whose TaskDownloads must go Ready; the others must be left alone.
	watched []string
	// before, if set, runs on the empty cluster before the objects are applied.
	before func(t *testing.T, c *cluster)
	// gates: the manager runs with scheduling gates, so gated pods in watched namespaces start.
	gates bool
}

func installations() []installation {
	return []installation{
		{"install.yaml", buildInstaller, teamNamespaces, nil, false},
		{"chart defaults", func(t *testing.T) []*unstructured.Unstructured { return helmTemplate(t) }, teamNamespaces,
			checkHelmInstallNotes, false},
		{"chart namespaced", func(t *testing.T) []*unstructured.Unstructured {
			return helmTemplate(t, "--set", "rbac.namespaced=true", "--set", "operator.watchNamespaces={team-a,team-b}")
		}, []string{"team-a", "team-b"}, nil, false},
		{"chart namespaced with scheduling gates", func(t *testing.T) []*unstructured.Unstructured {
			return helmTemplate(t, "--set", "rbac.namespaced=true", "--set", "operator.watchNamespaces={team-a,team-b}",
				"--set", "operator.schedulingGates=true")
		}, []string{"team-a", "team-b"}, nil, true},
	}
}

// buildInstaller renders dist/install.yaml as `make build-installer` does (hack/image/render-installer.sh,
// which sets the image in a throwaway overlay of config/default), without writing into dist/.
func buildInstaller(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	cmd := exec.Command(filepath.Join("hack", "image", "render-installer.sh"), tool(t, "kustomize"),
		"ghcr.io/pixxel-space/taskdownload-operator:v0.0.0-deploytest")
	cmd.Dir = envtestutil.RepoRoot()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/image/render-installer.sh: %v\n%s", err, stderr.String())
	}
	return decode(t, out)
}

// TestInstallationsRunWithTheirOwnIdentity installs each rendering on a fresh API server and runs the
// manager as its ServiceAccount: TaskDownloads with ConfigMap and Secret targets go Ready in every
// watched namespace, unwatched namespaces are left alone, and nothing is forbidden.
func TestInstallationsRunWithTheirOwnIdentity(t *testing.T) {
	bin := managerBinary(t)
	for _, inst := range installations() {
		t.Run(inst.name, func(t *testing.T) {
			objs := inst.objects(t)
			c := startCluster(t)
			for _, ns := range teamNamespaces {
				c.createNamespace(t, ns)
			}
			if inst.before != nil {
				inst.before(t, c)
			}
			c.apply(t, objs)

			deploy := find(objs, "Deployment", nil)
			NewWithT(t).Expect(deploy).NotTo(BeNil())
			fake := fakepixxel.New()
			t.Cleanup(fake.Close)
			fake.RequireAPIKey(apiKey)
			fake.SetDefaultPending(0)
			m := c.startManager(t, bin, deploy, fake.URL)

			for _, ns := range teamNamespaces {
				c.createTaskDownloads(t, ns)
				if inst.gates {
					c.createGatedPod(t, ns)
				}
			}
			if inst.gates {
				checkGatedPods(t, c, inst.watched)
			}
			checkInstallation(t, c, m, deploy, fake, inst.watched)
		})
	}
}

func checkInstallation(t *testing.T, c *cluster, m *managerProcess, deploy *unstructured.Unstructured,
	fake *fakepixxel.Server, watched []string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Eventually(func(g Gomega) {
		for _, ns := range watched {
			for _, td := range c.taskDownloads(g, ns) {
				g.Expect(apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionReady)).
					To(BeTrue(), "%s/%s: %v", ns, td.Name, td.Status.Conditions)
			}
			cm := &corev1.ConfigMap{}
			g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-configmap"}, cm)).To(Succeed())
			g.Expect(cm.Data["SIGNED_URL"]).To(HavePrefix("https://"))
			sec := &corev1.Secret{}
			g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-secret"}, sec)).To(Succeed())
			g.Expect(string(sec.Data["SIGNED_URL"])).To(HavePrefix("https://"))
		}
	}).WithTimeout(2*time.Minute).WithPolling(time.Second).Should(Succeed(), m.tail)

	for _, ns := range teamNamespaces {
		if slices.Contains(watched, ns) {
			continue
		}
		g.Consistently(func(g Gomega) {
			for _, td := range c.taskDownloads(g, ns) {
				g.Expect(td.Status.Conditions).To(BeEmpty(), "%s/%s in an unwatched namespace", ns, td.Name)
				g.Expect(fake.Calls(fakepixxel.Task{WorkflowID: "wf", JobID: "job", TaskID: ns + "-" + td.Name})).To(BeZero())
			}
			var cms corev1.ConfigMapList
			g.Expect(c.admin.List(ctx, &cms, client.InNamespace(ns), client.HasLabels{"downloads.pixxel.space/taskdownload"})).To(Succeed())
			g.Expect(cms.Items).To(BeEmpty())
		}).WithTimeout(3 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	}

	// Leader election ran in the Deployment's namespace, as the ServiceAccount.
	lease := &coordinationv1.Lease{}
	g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: deploy.GetNamespace(), Name: "taskdownload-operator.pixxel.space"}, lease)).
		To(Succeed(), "the leader election Lease is not in the Deployment's namespace")
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())

	g.Expect(m.get("/readyz", m.probeAddr, "")).To(Equal(200))
	if m.metricsAddr != "" {
		checkMetricsAuth(t, c, m)
	}
	m.stop(t)
	g.Expect(m.Log()).NotTo(MatchRegexp("(?i)forbidden"), "the installed RBAC refused the manager")
}

// checkHelmInstallNotes runs `helm install --dry-run=server` against the empty cluster: helm checks
// the chart's kubeVersion against the real server, and prints NOTES.txt, which must tell a new user
// what to do next.
func checkHelmInstallNotes(t *testing.T, c *cluster) {
	t.Helper()
	g := NewWithT(t)
	kubeconfig := c.kubeconfig(t, t.TempDir(), "")
	out, stderr, err := run(t, "helm", "install", "td", "dist/chart", "--dry-run=server", "--kubeconfig", kubeconfig,
		"--namespace", releaseNamespace, "--set", "manager.image.repository=registry.example/td", "--set", "manager.image.tag=v9")
	g.Expect(err).NotTo(HaveOccurred(), stderr)
	_, notes, found := strings.Cut(string(out), "NOTES:")
	g.Expect(found).To(BeTrue(), "helm printed no NOTES")
	g.Expect(notes).To(ContainSubstring("kubectl -n <namespace> create secret generic pixxel-api-key --from-literal=api-key="))
	g.Expect(notes).To(ContainSubstring("kind: TaskDownload"))
	g.Expect(notes).To(ContainSubstring("image: registry.example/td:v9"))
	g.Expect(notes).To(ContainSubstring(`command: ["/fetch"`))
	g.Expect(notes).To(ContainSubstring("rollout status deployment/td-taskdownload-operator-controller-manager"))
}

// checkGatedPods: the gate controller, with the pods RBAC the chart grants per watched namespace,
// releases pods gated on a Ready TaskDownload there, and leaves other namespaces' pods gated.
func checkGatedPods(t *testing.T, c *cluster, watched []string) {
	t.Helper()
	g := NewWithT(t)
	gates := func(g Gomega, ns string) []corev1.PodSchedulingGate {
		pod := &corev1.Pod{}
		g.Expect(c.admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "gated"}, pod)).To(Succeed())
		return pod.Spec.SchedulingGates
	}
	g.Eventually(func(g Gomega) {
		for _, ns := range watched {
			g.Expect(gates(g, ns)).To(BeEmpty(), "the pod in %s is still gated", ns)
		}
	}).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	for _, ns := range teamNamespaces {
		if !slices.Contains(watched, ns) {
			g.Expect(gates(g, ns)).To(HaveLen(1), "the pod in unwatched %s lost its gate", ns)
		}
	}
}
