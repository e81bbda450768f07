#!/usr/bin/env bash
# Provides Kubernetes binaries and prints the directory that holds them: kube-apiserver and etcd for
# envtest by default, or the components named after the version (make e2e asks for kubelet,
# kube-controller-manager and kube-scheduler too).
#
# It first asks setup-envtest (fast where release downloads are reachable). Where that fails, as on
# machines that only reach the Go module proxy, it builds kube-apiserver and etcd from source through
# the module proxy. Either way the binaries land in setup-envtest's store, outside the clone, so later
# runs and CI on the same machine reuse them.
#
# Usage: hack/envtest-binaries.sh [K8S_VERSION [COMPONENT...]]   (progress on stderr, the directory on stdout)
#   COMPONENT: etcd, kube-apiserver, kubelet, kube-controller-manager, kube-scheduler
#   (default: etcd kube-apiserver).
set -euo pipefail

K8S_VERSION="${1:-${ENVTEST_K8S_VERSION:-1.37.2}}"
shift || true
COMPONENTS=("$@")
if [[ ${#COMPONENTS[@]} -eq 0 ]]; then
  COMPONENTS=(etcd kube-apiserver)
fi
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

# The components not yet in the store.
missing() {
  local c
  for c in "${COMPONENTS[@]}"; do
    [[ -x "$DEST/$c" ]] || echo "$c"
  done
}

have_all() { [[ -z "$(missing)" ]]; }

# Reads `go build -v` output (one package per line) and prints a progress line every 30 s, so that a
# build of half an hour does not look hung.
progress() {
  local what=$1 n=0 last=$SECONDS start=$SECONDS line
  while IFS= read -r line; do
    case $line in
      *" "*|"#"*) printf '%s\n' "$line" >&2 ;; # compiler messages, not package names
      *) n=$((n + 1)) ;;
    esac
    if (( SECONDS - last >= 30 )); then
      log "building ${what}: ${n} packages compiled, $((SECONDS - start))s"
      last=$SECONDS
    fi
  done
  log "built ${what}: ${n} packages compiled in $((SECONDS - start))s"
}

if have_all; then
  echo "$DEST"
  exit 0
fi

only_envtest=true
for c in $(missing); do
  [[ $c == etcd || $c == kube-apiserver ]] || only_envtest=false
done
if [[ $only_envtest == true && -n "$SETUP_ENVTEST" && -x "$SETUP_ENVTEST" ]]; then
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

todo=" $(missing | tr '\n' ' ')"

if [[ $todo == *" etcd "* ]]; then
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

kube=()
for c in $todo; do
  [[ $c == etcd ]] || kube+=("$c")
done
if [[ ${#kube[@]} -gt 0 ]]; then
  log "building ${kube[*]} v${K8S_VERSION}: kube-apiserver alone takes about 13 minutes on 2 cores the first time, kubelet about 30 more; under a minute with a warm Go build cache"
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init envtest-kube >/dev/null 2>&1
  go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" > kube.json
  kube_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' kube.json | head -1)"
  go mod edit -require="k8s.io/kubernetes@v${K8S_VERSION}"
  # k8s.io/kubernetes replaces its staging modules with local directories; point each at its tagged release.
  sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#\1#p' "$kube_dir/go.mod" | sort -u | while read -r mod; do
    go mod edit -replace="${mod}=${mod}@${STAGING_VERSION}"
  done
  pkgs=()
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    for c in "${kube[@]}"; do
      echo "import _ \"k8s.io/kubernetes/cmd/${c}\""
      pkgs+=("k8s.io/kubernetes/cmd/${c}")
    done
  } > tools.go
  go mod tidy 2>/dev/null
  pkg=k8s.io/component-base/version
  mkdir -p "$work/out"
  # One go build for all of them: the packages they share compile once.
  CGO_ENABLED=0 go build -v -trimpath -o "$work/out/" \
    -ldflags "-X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR} -X ${pkg}.gitTreeState=clean" \
    "${pkgs[@]}" 2>&1 | progress "${kube[*]}"
  for c in "${kube[@]}"; do
    mv "$work/out/$c" "$DEST/$c"
  done
fi

log "${COMPONENTS[*]} ready in $DEST ($((SECONDS - start))s)"
echo "$DEST"
