#!/usr/bin/env bash
# Prints config/default with the manager's image set to IMG. The image is set in a throwaway overlay,
# so no committed file changes (kubebuilder's `kustomize edit set image` in config/manager did).
#
#   hack/image/render-installer.sh KUSTOMIZE IMG > install.yaml
set -euo pipefail
kustomize=$1 img=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
# A relative path would break once the edit below changes directory.
if [[ $kustomize == */* ]]; then
	kustomize="$(cd "$(dirname "$kustomize")" && pwd)/$(basename "$kustomize")"
fi

# The image name config/manager/manager.yaml uses; internal/releasetest fails if they drift apart.
name=ghcr.io/pixxel-space/taskdownload-operator

# Inside the clone, so that the overlay can name config/default by a relative path.
mkdir -p "$root/bin"
tmp=$(mktemp -d "$root/bin/.installer-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../config/default
EOF
(cd "$tmp" && "$kustomize" edit set image "$name=$img")
"$kustomize" build "$tmp"
