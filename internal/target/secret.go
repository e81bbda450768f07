package target

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete

// secret publishes to an Opaque Secret, for namespaces whose ConfigMap readers must not be able to
// download the task's outputs: a signed URL is a bearer credential, so status does not show it.
type secret struct{}

func (secret) TargetKind() downloadsv1alpha1.TargetKind { return downloadsv1alpha1.TargetSecret }

func (secret) GroupVersionKind() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("Secret")
}

func (secret) New() client.Object { return &corev1.Secret{} }

func (secret) Data(obj client.Object) map[string]string {
	s := obj.(*corev1.Secret)
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func (secret) SetData(obj client.Object, data map[string]string) {
	s := obj.(*corev1.Secret)
	s.Type = corev1.SecretTypeOpaque
	s.Data = make(map[string][]byte, len(data))
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
}

func (secret) URLInStatus() bool { return false }

func (secret) Volume(name string) corev1.VolumeSource {
	return corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}
}
