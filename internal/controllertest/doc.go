// Package controllertest is the TaskDownload controller's envtest suite: the manager (internal/manager.New)
// on a real kube-apiserver and etcd against a fake platform, one test per whole behaviour (pending →
// ready, Secret created later, target restored, refresh, expiry, restart, no secret in any log or event).
//
// The controller's pure tables (summarize, requeue, schedule, classify, text) live next to the code in
// internal/controller and need no API server: `make test-unit` runs them, `make test` runs both.
package controllertest
