package schedulinggate

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// CacheOptions adds the pod cache this controller reads to the manager's cache options. Only pods not
// yet bound to a node are listed and watched (a scheduling gate can only be on such a pod), and each is
// trimmed by trimPod, so that the cluster's running pods cost nothing and a waiting pod a few hundred
// bytes. Pods are cached in the manager's namespaces (Namespaces is left nil, so it defaults to them).
func CacheOptions(opts cache.Options) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	opts.ByObject[&corev1.Pod{}] = cache.ByObject{
		Field:     fields.OneTermEqualSelector("spec.nodeName", ""),
		Transform: trimPod,
	}
	return opts
}

// trimPod keeps what the controllers read: the pod's identity, its resourceVersion, its scheduling
// gates, and whether it asked for and got injection (internal/injection's bypass report). Other labels
// and annotations (kubectl's last-applied copy of the whole spec), managed fields, containers and status
// are dropped before the pod enters the cache.
func trimPod(in any) (any, error) {
	pod, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	out := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
		},
		Spec: corev1.PodSpec{SchedulingGates: pod.Spec.SchedulingGates},
	}
	if v, ok := pod.Labels[downloadsv1alpha1.LabelInject]; ok {
		out.Labels = map[string]string{downloadsv1alpha1.LabelInject: v}
	}
	if v, ok := pod.Annotations[downloadsv1alpha1.AnnotationInjected]; ok {
		out.Annotations = map[string]string{downloadsv1alpha1.AnnotationInjected: v}
	}
	return out, nil
}
