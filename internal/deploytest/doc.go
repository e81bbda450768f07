// Package deploytest proves the operator's install manifests. Each rendering a user installs
// (dist/install.yaml from kustomize, the Helm chart with defaults, the chart in namespaced mode) is
// applied for real to a fresh API server without CRDs, and the manager binary runs with the rendered
// Deployment's arguments as the rendered ServiceAccount, so only the installed RBAC authorizes it. The
// chart's schema, lint, documentation and monitoring rules and every kustomize folder under config/
// are checked with the pinned tools in bin/.
package deploytest
