//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// The chart's scenarios come after the install.yaml ones (files run in name order), so that the
// suite switches installations once.

// 3. Scheduling gates under a real scheduler: the gated sample Job's pod waits, unscheduled, until
// its TaskDownload is Ready; a foreign gate keeps a pod gated.
func TestSchedulingGates(t *testing.T) {
	useInstall(
		t,
		install{
			name:       "chart with operator.schedulingGates=true",
			helmValues: []string{"operator.schedulingGates=true"},
		},
	)
	ns := team(t, "e2e-gates")
	td, _ := sample(t, "taskdownload_job_fetch.yaml") // defines scene-42, which the gated Job waits for
	_, job := sample(t, "taskdownload_job_gate.yaml")
	gate := job.Spec.Template.Spec.SchedulingGates[0].Name
	forThisCluster(job, ns)
	create(t, job)
	foreign := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign-gate"},
		Spec: corev1.PodSpec{
			SchedulingGates: []corev1.PodSchedulingGate{{Name: gate}, {Name: "example.com/quota"}},
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: new(true), RunAsUser: new(int64(65532))},
			Containers: []corev1.Container{{Name: "c", Image: env.checkerImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/checker", "--inspect-pid=1"}}},
			RestartPolicy: corev1.RestartPolicyNever,
		},
	}
	create(t, foreign)

	// Before the TaskDownload exists: Pending, not scheduled, and the pod's events say why.
	var pod *corev1.Pod
	poll(t, time.Minute, "the gated pod to say why it waits", func(ctx context.Context) (bool, string) {
		var pods corev1.PodList
		if err := k8s.List(ctx, &pods, client.InNamespace(ns), jobPods(job)); err != nil || len(pods.Items) != 1 {
			return false, fmt.Sprintf("%d pods, %v", len(pods.Items), err)
		}
		pod = &pods.Items[0]
		events := eventsFor(t, ns, "Pod", pod.Name)
		return slices.ContainsFunc(
				events,
				func(e string) bool { return strings.HasPrefix(e, "TaskDownloadNotFound") },
			), fmt.Sprint(
				events,
			)
	})
	assertGated(t, pod.Name, ns)
	t.Logf("pod %s waits: %v", pod.Name, eventsFor(t, ns, "Pod", pod.Name))

	// The TaskDownload arrives and becomes Ready: the gate goes, the pod is bound, runs and Succeeds.
	td.Namespace = ns
	task := taskOf(td)
	platform.Script(task, fakepixxel.Pending(), fakepixxel.Ready(platform.SignedURLFor(task)))
	create(t, td)
	waitReady(t, client.ObjectKeyFromObject(td), 2*time.Minute)
	waitJobComplete(t, job, 5*time.Minute)
	pod = jobPod(t, job)
	if pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodSucceeded || len(pod.Spec.SchedulingGates) != 0 {
		t.Errorf(
			"pod %s: node %q, phase %s, gates %v; want bound, Succeeded, no gates",
			pod.Name,
			pod.Spec.NodeName,
			pod.Status.Phase,
			pod.Spec.SchedulingGates,
		)
	}

	// The foreign gate is not ours to remove.
	poll(t, time.Minute, "the operator's gate removed from "+foreign.Name, func(ctx context.Context) (bool, string) {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(foreign), foreign); err != nil {
			return false, err.Error()
		}
		return len(foreign.Spec.SchedulingGates) == 1, fmt.Sprint(foreign.Spec.SchedulingGates)
	})
	if g := foreign.Spec.SchedulingGates[0].Name; g != "example.com/quota" {
		t.Errorf("%s keeps gate %s, want example.com/quota", foreign.Name, g)
	}
	time.Sleep(5 * time.Second) // the scheduler has had its chance
	assertGated(t, foreign.Name, ns)
}

// assertGated checks that a pod is Pending, unbound, and PodScheduled=False with reason SchedulingGated.
func assertGated(t *testing.T, name, ns string) {
	t.Helper()
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	gated := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse &&
			c.Reason == corev1.PodReasonSchedulingGated {
			gated = true
		}
	}
	if !gated || p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Errorf("pod %s: want Pending, unbound, PodScheduled=False/SchedulingGated; got\n%s", name, podsReport(ns))
	}
}

// 6. Helm: the packaged chart, with defaults, and namespaced to two teams.
func TestHelm(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		useInstall(t, install{name: "chart with defaults", helmValues: []string{}})
		userPath(t, team(t, "e2e-helm"))
	})
	t.Run("namespaced to team-a and team-b", func(t *testing.T) {
		// The chart makes Roles in the watched namespaces, so they exist first.
		a := team(t, "team-a")
		team(t, "team-b")
		c := team(t, "team-c")
		useInstall(
			t,
			install{
				name:       "chart namespaced",
				helmValues: []string{"rbac.namespaced=true", "operator.watchNamespaces={team-a,team-b}"},
			},
		)
		outside := taskDownload(c, "outside", "task-team-c", &v1alpha1.Target{Kind: v1alpha1.TargetConfigMap})
		create(t, outside)
		userPath(t, a)
		// team-a's TaskDownload went through several polls meanwhile; team-c's was never touched.
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(outside), outside); err != nil {
			t.Fatal(err)
		}
		if len(outside.Status.Conditions) > 0 || outside.Status.ObservedGeneration > 0 || outside.Status.Phase != "" {
			t.Errorf("team-c's TaskDownload was reconciled: %s", conditionsOf(outside))
		}
		if n := platform.Calls(taskOf(outside)); n != 0 {
			t.Errorf("team-c's task was called %d times", n)
		}
		if exists(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: c, Name: "outside"}}) {
			t.Error("a target was created in team-c")
		}
	})
}
