package controllertest

import (
	"context"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// argoHealth runs config/argocd/health.lua the way Argo CD does: the object as a Lua table in the
// global obj, returning {status, message}.
func argoHealth(g Gomega, td *downloadsv1alpha1.TaskDownload) (string, string) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(td)
	g.Expect(err).NotTo(HaveOccurred())
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, raw))
	g.Expect(L.DoFile(filepath.Join(envtestutil.RepoRoot(), "config", "argocd", "health.lua"))).To(Succeed())
	hs, ok := L.Get(-1).(*lua.LTable)
	g.Expect(ok).To(BeTrue(), "the script returns a table")
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, val := range x {
			t.RawSetString(k, toLua(L, val))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, val := range x {
			t.Append(toLua(L, val))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	}
	return lua.LNil
}

func TestArgoCDHealthCheck(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()

	t.Run("suspended", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		td := newTaskDownload(ns, "held", "pixxel", uniqueTask())
		td.Spec.Suspend = true
		g.Expect(k8s.Create(ctx, td)).To(Succeed())
		cur := waitFor(t, td, hasCondition(downloadsv1alpha1.ConditionReady, metav1.ConditionFalse, downloadsv1alpha1.ReasonSuspended))
		status, _ := argoHealth(g, cur)
		g.Expect(status).To(Equal("Suspended"))
	})

	t.Run("new object", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		td := newTaskDownload(ns, "fresh", "pixxel", uniqueTask())
		g.Expect(k8s.Create(ctx, td)).To(Succeed()) // the create response: not yet seen by the operator
		status, _ := argoHealth(g, td)
		g.Expect(status).To(Equal("Progressing"))
	})

	pending, ready, failed := lifecycle(t)
	status, msg := argoHealth(g, pending)
	g.Expect(status).To(Equal("Progressing"))
	g.Expect(msg).To(ContainSubstring("preparing the package"))

	status, _ = argoHealth(g, ready)
	g.Expect(status).To(Equal("Healthy"))

	status, msg = argoHealth(g, failed)
	g.Expect(status).To(Equal("Degraded"))
	g.Expect(msg).To(ContainSubstring("unknown task"))
}
