package tenancytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/manifests"
)

// The ServiceAccount config/default installs the manager as, which the least-privilege component's
// policy names.
const (
	operatorNamespace = "taskdownload-operator-system"
	operatorAccount   = "taskdownload-operator-controller-manager"
)

// operatorConfig is cfg impersonating the operator's ServiceAccount, as the API server sees a pod
// running with its token.
func operatorConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + operatorNamespace + ":" + operatorAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}
	return c
}

// readManifests decodes a file of the repository.
func readManifests(rel string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), rel))
	if err != nil {
		return nil, err
	}
	return manifests.Decode(data)
}

// installIdentity installs what the operator runs with: its ServiceAccount, the ClusterRoles
// controller-gen writes (config/rbac/role.yaml) and the scheduling-gates component grants, bound to
// it, and the least-privilege component's ValidatingAdmissionPolicy and binding. It returns once the
// policy is enforced.
func installIdentity(ctx context.Context, admin client.Client, cfg *rest.Config) error {
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: operatorAccount}},
	} {
		if err := admin.Create(ctx, obj); err != nil {
			return err
		}
	}
	for _, rel := range []string{"config/rbac/role.yaml", "config/components/scheduling-gates/role.yaml"} {
		objs, err := readManifests(rel)
		if err != nil {
			return err
		}
		role := objs[0]
		if role.GetKind() != "ClusterRole" {
			return fmt.Errorf("%s: first object is a %s, not a ClusterRole", rel, role.GetKind())
		}
		role.SetName("taskdownload-operator-" + role.GetName())
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.GetName()},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.GetName()},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: operatorNamespace, Name: operatorAccount}},
		}
		for _, obj := range []client.Object{role, binding} {
			if err := admin.Create(ctx, obj); err != nil {
				return err
			}
		}
	}
	policy, err := readManifests("config/components/least-privilege/policy.yaml")
	if err != nil {
		return err
	}
	for _, obj := range policy {
		if err := admin.Create(ctx, obj); err != nil {
			return err
		}
	}
	// The policy takes effect once the API server has compiled it: wait until it refuses something.
	op, err := client.New(operatorConfig(cfg), client.Options{})
	if err != nil {
		return err
	}
	return waitEnforced(ctx, op)
}

// waitEnforced waits until the operator's identity is refused an unlabelled ConfigMap.
func waitEnforced(ctx context.Context, op client.Client) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, GenerateName: "probe-"}}
		err := op.Create(ctx, cm, client.DryRunAll)
		if err == nil {
			return false, nil
		}
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "publishes") {
			return true, nil
		}
		return false, err
	})
}
