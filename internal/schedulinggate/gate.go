// Package schedulinggate holds pods back from scheduling until the TaskDownloads they need are Ready.
//
// A pod (usually through a Job's or Deployment's pod template) carries the scheduling gate
// downloads.pixxel.space/<name>; the kube-scheduler ignores it until every gate is removed. This
// controller removes that gate once TaskDownload <name> in the pod's namespace is Ready for its current
// spec, and tells the pod's owner, with one event, why a pod is still waiting. It touches nothing else:
// other controllers' gates stay, and pods without one of its gates are never written.
package schedulinggate

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// GatePrefix starts the name of every gate this controller removes; the rest is a TaskDownload's name.
// A gate's name part is at most 63 characters, so a TaskDownload with a longer name cannot be waited on.
const GatePrefix = downloadsv1alpha1.SchedulingGatePrefix

// GateName is the scheduling gate that holds a pod until TaskDownload name is Ready.
func GateName(taskDownload string) string { return GatePrefix + taskDownload }

// taskDownloadOf returns the TaskDownload a gate waits for, if the gate is one of ours.
func taskDownloadOf(gate string) (string, bool) {
	name, ok := strings.CutPrefix(gate, GatePrefix)
	return name, ok && name != ""
}

// gatedOn lists the TaskDownloads a pod's gates wait for, in the gates' order.
func gatedOn(pod *corev1.Pod) []string {
	var names []string
	for _, g := range pod.Spec.SchedulingGates {
		if name, ok := taskDownloadOf(g.Name); ok {
			names = append(names, name)
		}
	}
	return names
}

// state is what a gate waiting on a TaskDownload should do about it.
type state int

const (
	// stateMissing: the TaskDownload does not exist; the pod waits.
	stateMissing state = iota
	// statePending: the TaskDownload is working towards Ready; the pod waits.
	statePending
	// stateStalled: the TaskDownload cannot become Ready until someone acts; the pod waits.
	stateStalled
	// stateReady: the download is published for the current spec; the gate goes.
	stateReady
)

// stateOf reads a TaskDownload's state (nil: it does not exist). Ready counts only when it describes
// the current generation: after an edit to the spec, the published URL may be the old task's until the
// controller has looked, and releasing a pod then would hand it the wrong outputs.
func stateOf(td *downloadsv1alpha1.TaskDownload) state {
	if td == nil {
		return stateMissing
	}
	if c := apimeta.FindStatusCondition(td.Status.Conditions, downloadsv1alpha1.ConditionReady); c != nil &&
		c.Status == metav1.ConditionTrue && c.ObservedGeneration == td.Generation {
		return stateReady
	}
	if apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionStalled) ||
		td.Status.Phase == downloadsv1alpha1.PhaseFailed {
		return stateStalled
	}
	return statePending
}
