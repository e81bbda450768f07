//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

// 5. Restart and failover as pods: with 200 TaskDownloads pending, the manager pod is deleted, and
// its container is killed through the runtime. Each time a new process takes the Lease and every
// object goes Ready, at no more than pending + 2 platform calls each.
func TestRestartAndFailover(t *testing.T) {
	useInstall(t, kubectlInstall)
	t.Run("delete the manager pod", func(t *testing.T) {
		failover(t, "e2e-restart", "delete", func(t *testing.T, pod *corev1.Pod) {
			if err := k8s.Delete(context.Background(), pod); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("SIGKILL its container through the runtime", func(t *testing.T) {
		failover(t, "e2e-sigkill", "sigkill", func(t *testing.T, pod *corev1.Pod) {
			for _, cs := range pod.Status.ContainerStatuses {
				if cs.Name == "manager" {
					killContainer(t, cs.ContainerID)
					return
				}
			}
			t.Fatal("the manager pod has no manager container status")
		})
	})
}

func failover(t *testing.T, ns, kind string, disrupt func(*testing.T, *corev1.Pod)) {
	const n, pending = 200, 3
	team(t, ns)
	tds := make([]*v1alpha1.TaskDownload, 0, n)
	for i := range n {
		td := taskDownload(ns, fmt.Sprintf("td-%03d", i), fmt.Sprintf("%s-%03d", ns, i), nil)
		task := taskOf(td)
		platform.Script(
			task,
			fakepixxel.Pending(),
			fakepixxel.Pending(),
			fakepixxel.Pending(),
			fakepixxel.Ready(platform.SignedURLFor(task)),
		)
		tds = append(tds, td)
	}
	createAll(t, tds)
	// Every object has had its first answer (pending) before the disruption.
	poll(t, 2*time.Minute, "a first call for every TaskDownload", func(context.Context) (bool, string) {
		called := 0
		for _, td := range tds {
			if platform.Calls(taskOf(td)) > 0 {
				called++
			}
		}
		return called == n, fmt.Sprintf("%d of %d called", called, n)
	})
	pod := managerPod(t)
	before := lease(t)
	start := time.Now()
	disrupt(t, pod)

	// Failover: until another process holds the Lease.
	var holder string
	poll(t, 2*time.Minute, "a new leader", func(ctx context.Context) (bool, string) {
		l := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, l); err != nil {
			return false, err.Error()
		}
		holder = ptr.Deref(l.Spec.HolderIdentity, "")
		return holder != "" && holder != before, "holder " + holder
	})
	took := time.Since(start)
	t.Logf("FAILOVER kind=%s seconds=%.1f (Lease %s -> %s)", kind, took.Seconds(), before, holder)

	for _, td := range tds {
		waitReady(t, client.ObjectKeyFromObject(td), 4*time.Minute)
	}
	calls := make([]int, 0, n)
	for _, td := range tds {
		c := platform.Calls(taskOf(td))
		calls = append(calls, c)
		if c > pending+2 {
			t.Errorf("%s: %d platform calls, want at most %d (pending %d + 2)", td.Name, c, pending+2, pending)
		}
	}
	slices.Sort(calls)
	sum := 0
	for _, c := range calls {
		sum += c
	}
	t.Logf(
		"calls per object after %s: mean %.2f, max %d (pending %d, so %d is ideal)",
		kind,
		float64(sum)/n,
		calls[n-1],
		pending,
		pending+1,
	)
}

// lease returns the Lease's holder, waiting until there is one.
func lease(t *testing.T) string {
	t.Helper()
	var holder string
	poll(t, time.Minute, "a held Lease", func(ctx context.Context) (bool, string) {
		l := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, l); err != nil {
			return false, err.Error()
		}
		holder = ptr.Deref(l.Spec.HolderIdentity, "")
		return holder != "", "no holder"
	})
	return holder
}

// createAll creates objects with a few requests in flight.
func createAll(t *testing.T, tds []*v1alpha1.TaskDownload) {
	t.Helper()
	if err := load.Run(len(tds), 8, func(i int) error { return k8s.Create(context.Background(), tds[i]) }); err != nil {
		t.Fatal(err)
	}
}

// 7. Upgrade and uninstall. The upgrade to a newer build completes, Ready objects stay Ready and it
// causes no platform calls; kubectl delete -f install.yaml then removes the operator, and with its
// CRD every TaskDownload and what they published, as the README says; the API-key Secrets stay.
func TestUpgradeAndUninstall(t *testing.T) {
	if env.imageNext == "" {
		t.Skip("E2E_IMAGE_NEXT is not set: no newer build to upgrade to")
	}
	useInstall(t, kubectlInstall)
	ns := team(t, "e2e-upgrade")
	createUnrelated(t, ns)
	tds := make([]*v1alpha1.TaskDownload, 0, 5)
	for i := range 5 {
		td := taskDownload(
			ns,
			fmt.Sprintf("up-%d", i),
			fmt.Sprintf("task-upgrade-%d", i),
			&v1alpha1.Target{Kind: v1alpha1.TargetConfigMap},
		)
		create(t, td)
		tds = append(tds, td)
	}
	for _, td := range tds {
		waitReady(t, client.ObjectKeyFromObject(td), 2*time.Minute)
	}
	callsBefore := platform.TotalCalls()

	// Watch readiness through the whole upgrade.
	stop := make(chan struct{})
	var notReady []string
	var watched sync.WaitGroup
	watched.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			for _, td := range tds {
				cur := &v1alpha1.TaskDownload{}
				if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(td), cur); err == nil &&
					!isReady(cur) {
					notReady = append(
						notReady,
						fmt.Sprintf("%s at %s: %s", td.Name, time.Now().Format(time.TimeOnly), conditionsOf(cur)),
					)
				}
			}
		}
	})
	before := lease(t)
	applyInstall(t, install{name: kubectlInstall.name, image: env.imageNext})
	poll(t, time.Minute, "the new manager leading", func(ctx context.Context) (bool, string) {
		h := lease(t)
		return h != before, "holder " + h
	})
	// The new leader has listed and reconciled every object by now; give it time to call if it would.
	time.Sleep(20 * time.Second)
	close(stop)
	watched.Wait()
	for _, s := range notReady {
		t.Errorf("not Ready during the upgrade: %s", s)
	}
	if after := platform.TotalCalls(); after != callsBefore {
		t.Errorf("the upgrade made %d platform calls, want 0", after-callsBefore)
	}

	t.Run("uninstall removes the operator and CRD, so TaskDownloads and their targets", func(t *testing.T) {
		uninstall(t)
		waitGone(
			t,
			&apiextensionsv1.CustomResourceDefinition{
				ObjectMeta: metav1.ObjectMeta{Name: "taskdownloads.downloads.pixxel.space"},
			},
			2*time.Minute,
		)
		for _, td := range tds {
			waitGone(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: td.Name}}, 2*time.Minute)
		}
		for _, obj := range []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pixxel-api-key"}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated"}},
		} {
			if !exists(t, obj) {
				t.Errorf("%T %s was deleted by the uninstall", obj, obj.GetName())
			}
		}
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(schemaGVK("rbac.authorization.k8s.io", "v1", "ClusterRoleBindingList"))
		operator := client.MatchingLabels{"app.kubernetes.io/name": "taskdownload-operator"}
		if err := k8s.List(context.Background(), &list, operator); err != nil {
			t.Fatal(err)
		}
		crbs := make([]string, 0, len(list.Items))
		for _, i := range list.Items {
			crbs = append(crbs, i.Name)
		}
		if len(crbs) > 0 {
			t.Errorf("ClusterRoleBindings left behind: %v", crbs)
		}
	})
}
