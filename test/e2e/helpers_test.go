//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/load"
)

// team makes a namespace with the API-key Secret the samples name, removed when the test ends.
func team(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(name)
		}
		_ = k8s.Delete(context.Background(), ns)
		waitGone(t, ns, 3*time.Minute)
	})
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pixxel-api-key", Namespace: name},
		StringData: map[string]string{v1alpha1.DefaultAPIKeySecretKey: apiKey},
	}
	if err := k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	// Pods need the namespace's default ServiceAccount, which the controller manager makes.
	poll(t, 30*time.Second, "the default ServiceAccount in "+name, func(ctx context.Context) (bool, string) {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: name, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, fmt.Sprint(err)
	})
	return name
}

// sample reads the objects of config/samples/<file>.
func sample(t *testing.T, file string) (*v1alpha1.TaskDownload, *batchv1.Job) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "config", "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var td *v1alpha1.TaskDownload
	var job *batchv1.Job
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := utilyaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "TaskDownload":
			td = &v1alpha1.TaskDownload{}
			err = utilyaml.Unmarshal(doc, td)
		case "Job":
			job = &batchv1.Job{}
			err = utilyaml.Unmarshal(doc, job)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return td, job
}

// forThisCluster changes a sample Job only where this cluster needs it: the operator's image for
// fetch, the checker (which verifies every file's SHA-256) instead of busybox, and host networking
// to reach the storage server on loopback.
func forThisCluster(job *batchv1.Job, namespace string) {
	job.Namespace = namespace
	spec := &job.Spec.Template.Spec
	spec.HostNetwork = true
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == "fetch" {
			spec.InitContainers[i].Image = env.image
			spec.InitContainers[i].ImagePullPolicy = corev1.PullNever
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.Image, c.ImagePullPolicy = env.checkerImage, corev1.PullNever
		c.Command = []string{"/checker"}
		c.Args = append([]string{"--dir=/data"}, storage.expectArgs()...)
	}
}

// taskOf is the fake's name for a TaskDownload's task.
func taskOf(td *v1alpha1.TaskDownload) fakepixxel.Task {
	return fakepixxel.Task{
		WorkflowID: string(td.Spec.WorkflowID),
		JobID:      string(td.Spec.JobID),
		TaskID:     string(td.Spec.TaskID),
	}
}

// waitReady waits for a TaskDownload's Ready condition to be True for its generation.
func waitReady(t *testing.T, key client.ObjectKey, timeout time.Duration) *v1alpha1.TaskDownload {
	t.Helper()
	var td v1alpha1.TaskDownload
	poll(t, timeout, "TaskDownload "+key.String()+" Ready", func(ctx context.Context) (bool, string) {
		if err := k8s.Get(ctx, key, &td); err != nil {
			return false, err.Error()
		}
		return isReady(&td), conditionsOf(&td)
	})
	return &td
}

func isReady(td *v1alpha1.TaskDownload) bool {
	return load.IsReady(td) && td.Status.ObservedGeneration == td.Generation
}

func conditionsOf(td *v1alpha1.TaskDownload) string {
	parts := make([]string, 0, len(td.Status.Conditions))
	for _, c := range td.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("phase=%s %s", td.Status.Phase, strings.Join(parts, "; "))
}

// waitJobComplete waits for the Job's Complete condition; a Failed condition ends the wait at once.
func waitJobComplete(t *testing.T, job *batchv1.Job, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, "Job "+job.Name+" Complete", func(ctx context.Context) (bool, string) {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return false, err.Error()
		}
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, ""
			case batchv1.JobFailed:
				t.Fatalf("Job %s failed: %s: %s\n%s", job.Name, c.Reason, c.Message, podsReport(job.Namespace))
			}
		}
		return false, fmt.Sprintf(
			"active=%d failed=%d succeeded=%d\n%s",
			job.Status.Active,
			job.Status.Failed,
			job.Status.Succeeded,
			podsReport(job.Namespace),
		)
	})
}

// jobPods selects a Job's pods.
func jobPods(job *batchv1.Job) client.MatchingLabels {
	return client.MatchingLabels{"batch.kubernetes.io/job-name": job.Name}
}

// jobPod returns the Job's one pod.
func jobPod(t *testing.T, job *batchv1.Job) *corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := k8s.List(context.Background(), &pods, client.InNamespace(job.Namespace), jobPods(job)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("Job %s: want one pod, found %d\n%s", job.Name, len(pods.Items), podsReport(job.Namespace))
	}
	return &pods.Items[0]
}

// podsReport describes every pod of a namespace: phase, conditions, containers' states.
func podsReport(ns string) string {
	var pods corev1.PodList
	if err := k8s.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(
			&b,
			"  pod %s: phase=%s node=%q gates=%v\n",
			p.Name,
			p.Status.Phase,
			p.Spec.NodeName,
			p.Spec.SchedulingGates,
		)
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(&b, "    %s=%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
		for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			fmt.Fprintf(&b, "    container %s: restarts=%d %s\n", cs.Name, cs.RestartCount, stateOf(cs.State))
		}
	}
	return b.String()
}

func stateOf(s corev1.ContainerState) string {
	switch {
	case s.Terminated != nil:
		return fmt.Sprintf(
			"terminated exit=%d reason=%s %s",
			s.Terminated.ExitCode,
			s.Terminated.Reason,
			s.Terminated.Message,
		)
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return fmt.Sprintf("waiting %s %s", s.Waiting.Reason, s.Waiting.Message)
	}
	return "unknown"
}

// exitCode is a terminated container's exit code, or -1.
func exitCode(statuses []corev1.ContainerStatus, name string) int {
	for _, cs := range statuses {
		if cs.Name == name && cs.State.Terminated != nil {
			return int(cs.State.Terminated.ExitCode)
		}
	}
	return -1
}

// logs returns a container's log.
func logs(t *testing.T, ns, pod, container string) string {
	t.Helper()
	b, err := clientset.CoreV1().
		Pods(ns).
		GetLogs(pod, &corev1.PodLogOptions{Container: container}).
		DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s/%s %s: %v", ns, pod, container, err)
	}
	return string(b)
}

// eventsFor returns the events recorded about an object (about every object of kind when name is empty), as
// "Reason: message" lines.
func eventsFor(t *testing.T, ns, kind, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == kind && (name == "" || e.InvolvedObject.Name == name) {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// poll calls cond every second until it reports true, and fails the test with its last note after
// timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, string)) {
	t.Helper()
	var note string
	err := wait.PollUntilContextTimeout(
		context.Background(),
		time.Second,
		timeout,
		true,
		func(ctx context.Context) (bool, error) {
			var ok bool
			ok, note = cond(ctx)
			return ok, nil
		},
	)
	if err != nil {
		t.Fatalf("%s: not within %s: %s", what, timeout, note)
	}
}

// create creates obj, failing the test otherwise.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// exists reports whether obj exists, reading it into obj.
func exists(t *testing.T, obj client.Object) bool {
	t.Helper()
	err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// dumpNamespace prints what a failed test leaves in a namespace: pods and events.
func dumpNamespace(ns string) {
	fmt.Printf("--- namespace %s\n%s", ns, podsReport(ns))
	var list corev1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err == nil {
		for _, e := range list.Items {
			fmt.Printf("  event %s/%s %s: %s\n", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	var tds v1alpha1.TaskDownloadList
	if err := k8s.List(context.Background(), &tds, client.InNamespace(ns)); err == nil {
		for i := range tds.Items {
			fmt.Printf("  taskdownload %s: %s\n", tds.Items[i].Name, conditionsOf(&tds.Items[i]))
		}
	}
}

// dumpState prints the operator's pods and its log tail after a failed run.
func dumpState() {
	dumpNamespace(operatorNamespace)
	var pods corev1.PodList
	if err := k8s.List(context.Background(), &pods, client.InNamespace(operatorNamespace)); err != nil {
		return
	}
	tail := int64(60)
	for _, p := range pods.Items {
		b, err := clientset.CoreV1().
			Pods(p.Namespace).
			GetLogs(p.Name, &corev1.PodLogOptions{Container: "manager", TailLines: &tail}).
			DoRaw(context.Background())
		if err == nil {
			fmt.Printf("--- manager log %s (last %d lines)\n%s\n", p.Name, tail, b)
		}
	}
}

func schemaGVK(group, version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}
