package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/target"
)

// secretNameIndex indexes TaskDownloads by the name of their API-key Secret.
const secretNameIndex = "spec.apiKeySecretRef.name"

// publishedForIndex indexes the objects (of every target.Kind) the operator published by the TaskDownload they
// were published for (their LabelTaskDownload label), so that finding one object's targets does not
// scan every published object in its namespace: with 10,000 TaskDownloads in one namespace, a label
// selector on the cache checks 10,000 objects on every publish.
const publishedForIndex = "metadata.labels.taskdownload"

func publishedFor(o client.Object) []string {
	if name := o.GetLabels()[downloadsv1alpha1.LabelTaskDownload]; name != "" {
		return []string{name}
	}
	return nil
}

// ManagedObjectsSelector selects the objects the operator publishes to (of every target.Kind), keeping of
// each only the metadata the controller reads (keepTargetMetadata). Give it to the manager's cache (see
// ManagerCacheOptions) so that only those are cached, and only so.
func ManagedObjectsSelector() cache.ByObject {
	return cache.ByObject{
		Label: labels.SelectorFromSet(labels.Set{
			downloadsv1alpha1.LabelManagedBy: downloadsv1alpha1.ManagedByValue,
		}),
		Transform: keepTargetMetadata,
	}
}

// ManagerCacheOptions restricts the manager's cache of every target.Kind (ConfigMaps, Secrets) to the
// metadata of the objects the operator publishes, and drops managed fields from everything it caches. Anyone may set
// the managed-by label on their own objects: caching them whole, 60 labelled ConfigMaps of 900 KiB
// grew the heap by 56 MiB. Their data is read from the API server when it must be (see getTarget).
func ManagerCacheOptions(opts cache.Options) cache.Options {
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	for _, k := range target.Kinds() {
		opts.ByObject[target.Metadata(k)] = ManagedObjectsSelector()
	}
	opts.DefaultTransform = cache.TransformStripManagedFields()
	return opts
}

// keepTargetMetadata trims a cached target's metadata to a fixed size whatever its owner put on it:
// identity, version, the operator's two labels and the controller reference. Annotations (up to
// 256 KiB each object) and other labels are dropped.
func keepTargetMetadata(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil
	}
	kept := metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp, Labels: map[string]string{},
	}
	for _, k := range []string{downloadsv1alpha1.LabelManagedBy, downloadsv1alpha1.LabelTaskDownload} {
		if v, ok := m.Labels[k]; ok {
			kept.Labels[k] = v
		}
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		kept.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	m.ObjectMeta = kept
	return m, nil
}

// SetupOptions tunes the controller.
type SetupOptions struct {
	MaxConcurrentReconciles int
	// DefaultNamespaces restricts the Secret watch to these namespaces, like the manager's cache.
	DefaultNamespaces map[string]cache.Config
}

// SetupWithManager registers the controller. Besides TaskDownloads it watches the objects they publish
// to (restored when changed or deleted) and, through a metadata-only cache of its own, the Secrets they
// read their API keys from, so that a created or changed Secret is acted upon at once.
func (r *TaskDownloadReconciler) SetupWithManager(mgr ctrl.Manager, opts SetupOptions) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.Pixxel == nil {
		return fmt.Errorf("TaskDownloadReconciler needs a platform API client")
	}
	r.backoff = newFailureBackoff(r.PollInterval, r.MaxPollInterval)
	r.guard = &cacheGuard{reader: r.APIReader}

	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &downloadsv1alpha1.TaskDownload{}, secretNameIndex,
		func(o client.Object) []string {
			return []string{o.(*downloadsv1alpha1.TaskDownload).Spec.APIKeySecretRef.Name}
		}); err != nil {
		return fmt.Errorf("indexing TaskDownloads by Secret: %w", err)
	}
	for _, k := range target.Kinds() {
		if err := mgr.GetFieldIndexer().IndexField(context.Background(), target.Metadata(k), publishedForIndex,
			publishedFor); err != nil {
			return fmt.Errorf("indexing published objects: %w", err)
		}
	}

	secretMeta, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		HTTPClient:        mgr.GetHTTPClient(),
		DefaultNamespaces: opts.DefaultNamespaces,
		DefaultTransform:  keepIdentityOnly,
	})
	if err != nil {
		return fmt.Errorf("creating Secret metadata cache: %w", err)
	}
	if err := mgr.Add(secretMeta); err != nil {
		return err
	}
	r.SecretMeta = secretMeta

	b := ctrl.NewControllerManagedBy(mgr).
		For(&downloadsv1alpha1.TaskDownload{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	for _, k := range target.Kinds() {
		b = b.Owns(k.New(), builder.OnlyMetadata)
	}
	return b.WatchesRawSource(source.Kind(secretMeta, secretMetadata(),
		handler.TypedEnqueueRequestsFromMapFunc(r.requestsForSecret))).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Named("taskdownload").
		Complete(r)
}

// requestsForSecret maps a Secret to the TaskDownloads in its namespace that read their API key from it.
func (r *TaskDownloadReconciler) requestsForSecret(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
	var list downloadsv1alpha1.TaskDownloadList
	if err := r.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingFields{secretNameIndex: s.Name}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing TaskDownloads for Secret", "secret", client.ObjectKeyFromObject(s))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, td := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: td.Namespace, Name: td.Name}})
	}
	return reqs
}

// secretMetadata is an empty Secret as the metadata-only cache holds it.
func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// keepIdentityOnly trims cached Secret metadata to what the watch needs, so that each unrelated Secret
// in the cluster costs a few hundred bytes: no labels, annotations (kubectl's last-applied annotation
// would hold the Secret's data) or managed fields.
func keepIdentityOnly(in any) (any, error) {
	if m, ok := in.(*metav1.PartialObjectMetadata); ok {
		m.ObjectMeta = metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp,
		}
	}
	return in, nil
}
