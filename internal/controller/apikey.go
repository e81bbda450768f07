package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// apiKeys remembers API keys read from Secrets, by Secret and resourceVersion, so that polling
// thousands of TaskDownloads that share one Secret reads it from the API server once per change rather
// than once per poll. The Secret watch's metadata cache says which version is current.
type apiKeys struct {
	mu      sync.Mutex
	secrets map[types.NamespacedName]cachedSecret
}

type cachedSecret struct {
	resourceVersion string
	values          map[string]string // only the keys TaskDownloads asked for
}

func (k *apiKeys) lookup(key types.NamespacedName, version, dataKey string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.secrets[key]
	if !ok || s.resourceVersion != version {
		return "", false
	}
	v, ok := s.values[dataKey]
	return v, ok
}

func (k *apiKeys) store(key types.NamespacedName, version, dataKey, value string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.secrets == nil {
		k.secrets = map[types.NamespacedName]cachedSecret{}
	}
	s, ok := k.secrets[key]
	if !ok || s.resourceVersion != version {
		s = cachedSecret{resourceVersion: version, values: map[string]string{}}
	}
	s.values[dataKey] = value
	k.secrets[key] = s
}

func (k *apiKeys) forget(key types.NamespacedName) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.secrets, key)
}

// MaxAPIKeyBytes is the longest API key the operator sends. Platform keys are tens of bytes; a larger
// value is a mistake (a whole file pasted into the Secret) or an attempt to make every answer costly to
// redact, and travels in every request's Authorization header.
const MaxAPIKeyBytes = 4 << 10

// checkAPIKey refuses a key that is too long, or that holds bytes an HTTP header cannot carry (control
// characters, a newline that would end the header), before any call is made. The message describes
// the value without quoting any of it.
func checkAPIKey(secretName, dataKey, key string) *failure {
	if len(key) > MaxAPIKeyBytes {
		return apiKeyInvalid(secretName, dataKey, fmt.Sprintf("is %d bytes long, more than the %d allowed",
			len(key), MaxAPIKeyBytes))
	}
	if !httpguts.ValidHeaderFieldValue(key) {
		return apiKeyInvalid(secretName, dataKey,
			"holds characters an HTTP header cannot carry (control characters or line breaks)")
	}
	return nil
}

// readAPIKey is the API-key step: it reads the key from the TaskDownload's Secret into the scope. A
// missing Secret, key or value is a failure the user must fix; the Secret watch brings the object back
// when they do. The value is read from the API server only when the Secret changed since last read.
func (r *TaskDownloadReconciler) readAPIKey(ctx context.Context, s *scope) (outcome, error) {
	ref := s.td.Spec.APIKeySecretRef
	dataKey := ref.Key
	if dataKey == "" {
		dataKey = downloadsv1alpha1.DefaultAPIKeySecretKey
	}
	name := types.NamespacedName{Namespace: s.td.Namespace, Name: ref.Name}

	if r.SecretMeta != nil {
		meta := secretMetadata()
		if err := r.SecretMeta.Get(ctx, name, meta); err == nil {
			if v, ok := r.keys.lookup(name, meta.ResourceVersion, dataKey); ok {
				s.apiKey, s.secretVersion = v, meta.ResourceVersion
				return outcome{}, nil
			}
		}
	}

	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, name, secret); err != nil {
		if apierrors.IsNotFound(err) {
			r.keys.forget(name)
			return outcome{}, secretNotFound(ref.Name, s.td.Namespace)
		}
		return outcome{}, fmt.Errorf("reading API key Secret %s: %w", ref.Name, err)
	}
	value, ok := secret.Data[dataKey]
	if !ok {
		return outcome{}, secretKeyNotFound(ref.Name, dataKey)
	}
	key := strings.TrimSpace(string(value))
	if key == "" {
		return outcome{}, secretKeyEmpty(ref.Name, dataKey)
	}
	if f := checkAPIKey(ref.Name, dataKey, key); f != nil {
		return outcome{}, f
	}
	r.keys.store(name, secret.ResourceVersion, dataKey, key)
	s.apiKey, s.secretVersion = key, secret.ResourceVersion
	return outcome{}, nil
}
