//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

// 9. One annotation: with the chart's injection on, a Deployment whose pods carry only the inject label
// and the taskdownloads annotation gets its download. The API server calls the webhook, which the
// manager serves with the certificate it issued itself; the kubelet runs the injected fetch init
// container, and the app container checks every file at /var/run/taskdownloads/<name>.
func TestInjection(t *testing.T) {
	useInstall(t, install{
		name: "chart with injection.enabled=true",
		helmValues: []string{"operator.schedulingGates=true", "injection.enabled=true",
			// The image make e2e imported: the chart's default is the manager's published image.
			"injection.image=" + env.image},
		// The kubelet refreshes the mounted certificate Secret, which the manager fills after it
		// starts, on its next sync of the pod: up to a minute or so before the webhook is Ready.
		available: 4 * time.Minute,
	})
	ns := team(t, "e2e-inject")
	td := taskDownload(ns, "scene-9", "task-inject", &v1alpha1.Target{Kind: v1alpha1.TargetSecret})
	task := taskOf(td)
	platform.Script(task, fakepixxel.Pending(), fakepixxel.Ready(platform.SignedURLFor(task)))
	create(t, td)

	mountPath := v1alpha1.DefaultInjectionMountPath + "/" + td.Name
	labels := map[string]string{"app": "process-scene-9"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "process-scene-9"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{"app": "process-scene-9", v1alpha1.LabelInject: "true"},
					Annotations: map[string]string{v1alpha1.AnnotationTaskDownloads: td.Name},
				},
				Spec: corev1.PodSpec{
					// Pods reach the storage server on loopback only: no pod network here.
					HostNetwork: true,
					Containers: []corev1.Container{{
						Name: "process", Image: env.checkerImage, ImagePullPolicy: corev1.PullNever,
						Command: []string{"/checker"},
						Args:    append([]string{"--dir=" + mountPath, "--stay"}, storage.expectArgs()...),
					}},
				},
			},
		},
	}
	create(t, deploy)

	var pod *corev1.Pod
	poll(t, 5*time.Minute, "the Deployment's pod to run with its download", func(ctx context.Context) (bool, string) {
		var pods corev1.PodList
		if err := k8s.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil ||
			len(pods.Items) != 1 {
			return false, fmt.Sprintf("%d pods, %v; events of the ReplicaSet: %v", len(pods.Items), err,
				eventsFor(t, ns, "ReplicaSet", ""))
		}
		pod = &pods.Items[0]
		return podReady(pod), podsReport(ns)
	})

	if got := pod.Annotations[v1alpha1.AnnotationInjected]; got != td.Name {
		t.Errorf("pod %s: annotation %s is %q, want %q", pod.Name, v1alpha1.AnnotationInjected, got, td.Name)
	}
	if code := exitCode(pod.Status.InitContainerStatuses, "fetch-"+td.Name); code != 0 {
		t.Errorf("fetch-%s exited %d, want 0", td.Name, code)
	}
	out := logs(t, ns, pod.Name, "process")
	if want := fmt.Sprintf("all %d files match", len(storage.files)); !strings.Contains(out, want) {
		t.Errorf("checker: want %q, got:\n%s", want, out)
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if m.MountPath == mountPath && !m.ReadOnly {
				t.Errorf("container %s mounts the download read-write", c.Name)
			}
		}
	}
	t.Logf("pod %s Ready; the checker said:\n%s", pod.Name, out)
}
