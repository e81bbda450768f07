package fakepixxel

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// parsePath extracts the task from /v0/workflows/{w}/jobs/{j}/tasks/{t}/download, unescaping each segment.
func parsePath(p string) (Task, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 8 || parts[0] != "v0" || parts[1] != "workflows" || parts[3] != "jobs" ||
		parts[5] != "tasks" || parts[7] != "download" {
		return Task{}, false
	}
	var ids [3]string
	for i, raw := range []string{parts[2], parts[4], parts[6]} {
		id, err := url.PathUnescape(raw)
		if err != nil || id == "" {
			return Task{}, false
		}
		ids[i] = id
	}
	return Task{WorkflowID: ids[0], JobID: ids[1], TaskID: ids[2]}, true
}

func errorBody(code, message string, details any) any {
	return map[string]any{"error": map[string]any{"code": code, "message": message, "details": details}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// resetConnection closes the connection without answering, and reports whether it could.
func resetConnection(w http.ResponseWriter) bool {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
	}
	return false
}
