#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest and prints the directory that holds them.
#
# It first asks setup-envtest (fast where release downloads are reachable). Where that fails, as on
# machines that only reach the Go module proxy, it builds kube-apiserver and etcd from source through
# the module proxy. Either way the binaries land in setup-envtest's store, outside the clone, so later
# runs and CI on the same machine reuse them.
#
# Usage: hack/envtest-binaries.sh [K8S_VERSION]   (progress on stderr, the directory on stdout)
set -euo pipefail

K8S_VERSION="${1:-${ENVTEST_K8S_VERSION:-1.37.2}}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.6.16}"
# k8s.io staging modules are tagged v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
STAGING_VERSION="v0.${K8S_VERSION#1.}"
K8S_MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
STORE="${ENVTEST_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest}"
DEST="${STORE}/k8s/${K8S_VERSION}-${GOOS}-${GOARCH}"
SETUP_ENVTEST="${SETUP_ENVTEST:-}"

log() { printf '[envtest] %s\n' "$*" >&2; }

have_all() { [[ -x "$DEST/kube-apiserver" && -x "$DEST/etcd" ]]; }

if have_all; then
  echo "$DEST"
  exit 0
fi

if [[ -n "$SETUP_ENVTEST" && -x "$SETUP_ENVTEST" ]]; then
  log "asking setup-envtest for Kubernetes ${K8S_VERSION}"
  if dir="$("$SETUP_ENVTEST" use "$K8S_VERSION" --bin-dir "$STORE" -p path 2>/dev/null)" && [[ -x "$dir/kube-apiserver" ]]; then
    echo "$dir"
    exit 0
  fi
  log "setup-envtest could not download; building from the Go module proxy instead"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$DEST"
start=$SECONDS

if [[ ! -x "$DEST/etcd" ]]; then
  log "building etcd v${ETCD_VERSION} (a minute or two)"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init envtest-etcd >/dev/null 2>&1
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod edit -require="go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
  go mod tidy 2>/dev/null
  CGO_ENABLED=0 go build -trimpath -o "$DEST/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$DEST/etcd.tmp" "$DEST/etcd"
fi

if [[ ! -x "$DEST/kube-apiserver" ]]; then
  log "building kube-apiserver v${K8S_VERSION}: about 13 minutes on 2 cores the first time, under a minute with a warm Go build cache"
  mkdir -p "$work/apiserver" && cd "$work/apiserver"
  go mod init envtest-apiserver >/dev/null 2>&1
  go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" > kube.json
  kube_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' kube.json | head -1)"
  go mod edit -require="k8s.io/kubernetes@v${K8S_VERSION}"
  # k8s.io/kubernetes replaces its staging modules with local directories; point each at its tagged release.
  sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#\1#p' "$kube_dir/go.mod" | sort -u | while read -r mod; do
    go mod edit -replace="${mod}=${mod}@${STAGING_VERSION}"
  done
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy 2>/dev/null
  pkg=k8s.io/component-base/version
  CGO_ENABLED=0 go build -trimpath -o "$DEST/kube-apiserver.tmp" \
    -ldflags "-X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR} -X ${pkg}.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver
  mv "$DEST/kube-apiserver.tmp" "$DEST/kube-apiserver"
fi

log "envtest binaries ready in $DEST ($((SECONDS - start))s)"
echo "$DEST"
