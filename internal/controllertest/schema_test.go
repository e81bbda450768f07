package controllertest

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
)

func TestSchemaRejectsBadSpecs(t *testing.T) {
	ns := newNamespace(t)
	valid := func() *downloadsv1alpha1.TaskDownload {
		return newTaskDownload(ns, "bad", "pixxel", fakepixxel.Task{WorkflowID: "w", JobID: "j", TaskID: "t"})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*downloadsv1alpha1.TaskDownload)
		field  string
	}{
		{"empty workflowID", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.WorkflowID = "" }, "spec.workflowID"},
		{"slash in jobID", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.JobID = "a/b" }, "spec.jobID"},
		{"space in taskID", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.TaskID = "a b" }, "spec.taskID"},
		{"tab in taskID", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.TaskID = "a\tb" }, "spec.taskID"},
		{"dot", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.TaskID = "." }, "spec.taskID"},
		{"dot dot", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.WorkflowID = ".." }, "spec.workflowID"},
		{"too long", func(td *downloadsv1alpha1.TaskDownload) {
			td.Spec.JobID = downloadsv1alpha1.ResourceID(strings.Repeat("j", 257))
		}, "spec.jobID"},
		{"no secret name", func(td *downloadsv1alpha1.TaskDownload) { td.Spec.APIKeySecretRef.Name = "" }, "spec.apiKeySecretRef.name"},
		{"bad target kind", func(td *downloadsv1alpha1.TaskDownload) {
			td.Spec.Target = &downloadsv1alpha1.Target{Kind: "Pod"}
		}, "spec.target.kind"},
		{"bad target name", func(td *downloadsv1alpha1.TaskDownload) {
			td.Spec.Target = &downloadsv1alpha1.Target{Name: "Not_A_Name"}
		}, "spec.target.name"},
		// The target's label holds the name; a longer one could never be published, and each retry
		// would call the platform.
		{"name too long for the target's label", func(td *downloadsv1alpha1.TaskDownload) {
			td.Name = strings.Repeat("n", 64)
			td.Spec.Target = &downloadsv1alpha1.Target{Name: "short"}
		}, "metadata.name must be at most 63 characters when spec.target is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			td := valid()
			tc.mutate(td)
			err := k8s.Create(context.Background(), td)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.field))
		})
	}

	t.Run("accepts unusual but valid IDs", func(t *testing.T) {
		g := NewWithT(t)
		td := valid()
		td.Name = "odd-ids"
		td.Spec.WorkflowID = "wf?x=1&y=%2F"
		td.Spec.JobID = "...."
		td.Spec.TaskID = downloadsv1alpha1.ResourceID(strings.Repeat("t", 256))
		g.Expect(k8s.Create(context.Background(), td)).To(Succeed())
	})

	t.Run("accepts a long name without a target", func(t *testing.T) {
		g := NewWithT(t)
		td := valid()
		td.Name = strings.Repeat("n", 200)
		td.Spec.Target = nil
		g.Expect(k8s.Create(context.Background(), td)).To(Succeed())
	})
}

// TestValidationMessagesReadWell applies bad objects, as a user would write them in YAML, to the API
// server and checks that each answer names the field and says what is wrong in words: no protobuf
// conversion error, no regular expression, no <nil> path.
func TestValidationMessagesReadWell(t *testing.T) {
	ns := newNamespace(t)
	for _, tc := range []struct {
		name  string
		edit  func(obj map[string]any)
		wants []string
	}{
		{"refreshBefore without a unit", func(obj map[string]any) { spec(obj)["refreshBefore"] = "10" },
			[]string{"spec.refreshBefore", "must be a duration with a unit, such as 90s, 15m or 1h30m"}},
		{"refreshBefore zero", func(obj map[string]any) { spec(obj)["refreshBefore"] = "0s" },
			[]string{"spec.refreshBefore", "must be longer than zero"}},
		{"refreshBefore negative", func(obj map[string]any) { spec(obj)["refreshBefore"] = "-5m" },
			[]string{"spec.refreshBefore", "must be longer than zero"}},
		{"a path for an ID", func(obj map[string]any) { spec(obj)["jobID"] = "jobs/42" },
			[]string{"spec.jobID", "must not contain '/'"}},
		{"a space in an ID", func(obj map[string]any) { spec(obj)["taskID"] = "task 7" },
			[]string{"spec.taskID", "must not contain spaces, tabs or line breaks"}},
		{"a bad Secret name", func(obj map[string]any) {
			spec(obj)["apiKeySecretRef"] = map[string]any{"name": "Pixxel_Key"}
		}, []string{"spec.apiKeySecretRef.name", "must be a valid object name"}},
		{"a bad target name", func(obj map[string]any) { spec(obj)["target"] = map[string]any{"name": "Out.Put_"} },
			[]string{"spec.target.name", "must be a valid object name"}},
		{"a name too long for the target's label", func(obj map[string]any) {
			obj["metadata"].(map[string]any)["name"] = strings.Repeat("n", 64)
			spec(obj)["target"] = map[string]any{"kind": "Secret"}
		}, []string{"spec.target: ", "metadata.name must be at most 63 characters when spec.target is set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": downloadsv1alpha1.GroupVersion.String(), "kind": "TaskDownload",
				"metadata": map[string]any{"name": "bad", "namespace": ns},
				"spec": map[string]any{"workflowID": "w", "jobID": "j", "taskID": "t",
					"apiKeySecretRef": map[string]any{"name": "pixxel"}},
			}}
			tc.edit(obj.Object)
			err := k8s.Create(context.Background(), obj)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			msg := err.Error()
			t.Log(msg)
			for _, want := range tc.wants {
				g.Expect(msg).To(ContainSubstring(want))
			}
			for _, unreadable := range []string{"<nil>", "protobuf", "conversion", "should match", "^", "failed to evaluate"} {
				g.Expect(msg).NotTo(ContainSubstring(unreadable))
			}
		})
	}
}

func spec(obj map[string]any) map[string]any { return obj["spec"].(map[string]any) }
