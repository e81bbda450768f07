// Package deploytest checks the operator's install manifests: the kustomize overlays in config/ and the
// Helm chart in dist/chart are rendered with the pinned tools in bin/ and every object is applied with
// server-side dry-run to a real API server, so a broken manifest fails CI.
package deploytest
