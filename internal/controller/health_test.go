package controller

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/gitopshealth"
)

// healthRows builds, with summarize, the TaskDownload of each row of the README's health table.
func healthRows() map[string]*v1.TaskDownload {
	at := summarizeNow
	step := func(prev v1.TaskDownloadStatus, obs observation) v1.TaskDownloadStatus {
		at = at.Add(time.Minute)
		return summarize(prev, 1, obs, at)
	}
	object := func(st v1.TaskDownloadStatus) *v1.TaskDownload {
		return &v1.TaskDownload{
			ObjectMeta: metav1.ObjectMeta{Name: "scene", Namespace: "ns", Generation: 1},
			Spec:       v1.TaskDownloadSpec{WorkflowID: "w", JobID: "j", TaskID: "t"},
			Status:     st,
		}
	}
	expires := &metav1.Time{Time: summarizeNow.Add(time.Hour)}
	pub := &publication{signedURL: "https://s/x", taskStatus: "ready", expiresAt: expires,
		task: v1.TaskRef{WorkflowID: "w", JobID: "j", TaskID: "t"}, obtainedAt: summarizeNow}
	fresh := v1.TaskDownloadStatus{ObservedGeneration: -1}
	pendingAnswer := observation{requested: true, answered: true, taskStatus: "pending", pending: true,
		pendingSince: &metav1.MicroTime{Time: summarizeNow}}
	forbidden := observation{requested: true, failure: classify(&pixxelError403), inputs: "abc"}
	unavailable := observation{requested: true, failure: &failure{reason: v1.ReasonAPIUnavailable, message: "down"}}

	pending := step(fresh, pendingAnswer)
	published := step(pending, observation{requested: true, answered: true, taskStatus: "ready", published: pub,
		statusURL: pub.signedURL, targetDesc: "status.signedURL"})
	refusedWhileUsable := step(published, forbidden)

	edited := object(published)
	edited.Generation = 2
	suspendedReady := object(step(published, observation{suspended: true}))
	suspendedReady.Spec.Suspend = true
	suspendedFresh := object(step(fresh, observation{suspended: true}))
	suspendedFresh.Spec.Suspend = true

	return map[string]*v1.TaskDownload{
		"created, not yet seen by the operator":                object(fresh),
		"waiting for the first URL":                            object(pending),
		"a passing failure before the first URL":               object(step(pending, unavailable)),
		"URL published":                                        object(published),
		"routine refresh: the platform prepares a new package": object(step(published, pendingAnswer)),
		"refresh failing for a passing reason":                 object(step(published, unavailable)),
		"refresh refused for good while the URL works":         object(refusedWhileUsable),
		"refused for good before any URL":                      object(step(pending, forbidden)),
		"URL expired, a new one still asked for": object(step(published, observation{requested: true, answered: true,
			taskStatus: "pending", pending: true, withdrawn: withdrawnExpired})),
		"URL expired after a refresh refused for good": object(step(refusedWhileUsable, observation{withdrawn: withdrawnExpired})),
		"spec edited, not yet handled":                 edited,
		"suspended with a URL published":               suspendedReady,
		"suspended before any URL":                     suspendedFresh,
	}
}

// TestHealthTable checks every row of the README's health table: the conditions and phase the
// operator's status code produces in that state, and what kstatus and config/argocd/health.lua make
// of them.
func TestHealthTable(t *testing.T) {
	g := NewWithT(t)
	rows := readHealthTable(t)
	objects := healthRows()
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		names = append(names, r[0])
	}
	g.Expect(names).To(ConsistOf(slices.Collect(maps.Keys(objects))), "the README's rows and this test's states")

	for _, row := range rows {
		t.Run(row[0], func(t *testing.T) {
			g := NewWithT(t)
			td := objects[row[0]]
			g.Expect(td).NotTo(BeNil())
			g.Expect(conditionStatus(td, v1.ConditionReady)).To(Equal(row[1]), "Ready")
			g.Expect(conditionStatus(td, v1.ConditionReconciling)).To(Equal(row[2]), "Reconciling")
			g.Expect(conditionStatus(td, v1.ConditionStalled)).To(Equal(row[3]), "Stalled")
			g.Expect(string(td.Status.Phase)).To(Equal(row[4]), "phase")
			ks, err := gitopshealth.Kstatus(td)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(ks)).To(Equal(row[5]), "kstatus")
			argo, msg, err := gitopshealth.ArgoCD(td)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(argo).To(Equal(row[6]), "Argo CD: %s", msg)
			g.Expect(msg).NotTo(BeEmpty())
		})
	}
}

func conditionStatus(td *v1.TaskDownload, condType string) string {
	if c := apimeta.FindStatusCondition(td.Status.Conditions, condType); c != nil {
		return string(c.Status)
	}
	return ""
}

// readHealthTable returns the body rows of the table in the README's "Health" section, each cell
// trimmed.
func readHealthTable(t *testing.T) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### Health: Ready, Reconciling, Stalled\n")
	if !ok {
		t.Fatal("README.md has no Health section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	var rows [][]string
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| state ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 7 {
			t.Fatalf("health table row with %d cells, want 7: %s", len(cells), line)
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatal("the Health section has no table")
	}
	return rows
}
