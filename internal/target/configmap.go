package target

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete

// configMap publishes to a ConfigMap: the default, readable by whoever reads the namespace's
// ConfigMaps, and the URL is shown in status too.
type configMap struct{}

func (configMap) TargetKind() downloadsv1alpha1.TargetKind { return downloadsv1alpha1.TargetConfigMap }

func (configMap) GroupVersionKind() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("ConfigMap")
}

func (configMap) New() client.Object { return &corev1.ConfigMap{} }

func (configMap) Data(obj client.Object) map[string]string { return obj.(*corev1.ConfigMap).Data }

func (configMap) SetData(obj client.Object, data map[string]string) {
	obj.(*corev1.ConfigMap).Data = maps.Clone(data)
}

func (configMap) URLInStatus() bool { return true }

func (configMap) Volume(name string) corev1.VolumeSource {
	return corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
}
