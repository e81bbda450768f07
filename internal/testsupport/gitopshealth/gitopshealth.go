// Package gitopshealth computes what GitOps tools say of a TaskDownload: kstatus (Flux, kubectl-style
// waits, Argo CD's kstatus-based checks) and Argo CD's custom Lua health check, config/argocd/health.lua,
// run the way Argo CD runs it.
package gitopshealth

import (
	"fmt"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// Kstatus is the kstatus status of td.
func Kstatus(td *downloadsv1alpha1.TaskDownload) (kstatus.Status, error) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(td)
	if err != nil {
		return "", err
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: raw})
	if err != nil {
		return "", err
	}
	return res.Status, nil
}

// ArgoCD runs config/argocd/health.lua on td as Argo CD does (the object as a Lua table in the global
// obj) and returns the status and message of the table it returns.
func ArgoCD(td *downloadsv1alpha1.TaskDownload) (status, message string, err error) {
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(td)
	if err != nil {
		return "", "", err
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, raw))
	if err := L.DoFile(filepath.Join(envtestutil.RepoRoot(), "config", "argocd", "health.lua")); err != nil {
		return "", "", err
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua returned %s, not a table", L.Get(-1).Type())
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String(), nil
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
	}
	return lua.LNil
}
