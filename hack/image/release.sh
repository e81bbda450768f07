#!/usr/bin/env bash
# Writes a release's artifacts into DIST (make release):
#   install.yaml                          every object a cluster needs, the image pinned to REPO:VERSION
#   taskdownload-operator-X.Y.Z.tgz       the Helm chart, version X.Y.Z, appVersion VERSION, image REPO
#   image/                                the multi-platform image as an OCI image layout (make image-push)
#   sbom.cdx.json                         CycloneDX SBOM of the Go module graph the binaries are built from
#   checksums.txt                         sha256sum of each of these files (sha256sum -c checksums.txt)
#
#   KUSTOMIZE=... HELM=... IMAGE_BUILDER=... CYCLONEDX_GOMOD=... \
#     hack/image/release.sh DIST VERSION REPO REVISION EPOCH PLATFORMS
set -euo pipefail
dist=$1 version=$2 repo=$3 revision=$4 created=$5 platforms=$6
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/hack/image"

if [[ ! $version =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "release: VERSION=$version is not a semantic version such as v0.1.0" >&2
	exit 1
fi
chart_version=${version#v}
# The repository dist/chart/values.yaml and config/manager name; REGISTRY replaces its registry part.
default_repo=ghcr.io/pixxel-space/taskdownload-operator

mkdir -p "$dist"
"$here/render-installer.sh" "$KUSTOMIZE" "$repo:$version" >"$dist/install.yaml"
echo "release: wrote $dist/install.yaml (image $repo:$version)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chart="$tmp/taskdownload-operator"
cp -R "$root/dist/chart" "$chart"
if [[ $repo != "$default_repo" ]]; then
	sed "s|$default_repo|$repo|g" "$chart/values.yaml" >"$tmp/values.yaml"
	mv "$tmp/values.yaml" "$chart/values.yaml"
fi
if ! grep -Eq "^ +repository: $repo\$" "$chart/values.yaml"; then
	echo "release: dist/chart/values.yaml does not name the image repository $default_repo" >&2
	exit 1
fi
"$HELM" package "$chart" --version "$chart_version" --app-version "$version" --destination "$dist"

"$IMAGE_BUILDER" build --root "$root" --out "$dist/image" --platforms "$platforms" \
	--version "$version" --revision "$revision" --created "$created"

# The SBOM lists the modules of the operator's module graph, with their licenses and the Go standard
# library. -test keeps test-only modules too: without it cyclonedx-gomod v1.10 leaves out modules the
# binaries do link (go.yaml.in/yaml/v3), and internal/releasetest checks that none is missing. Without
# serial number and timestamp, a commit always gives the same file.
"$CYCLONEDX_GOMOD" mod -json -licenses -std -test -noserial -notimestamp -output-version 1.6 \
	-output "$dist/sbom.cdx.json" "$root" 2>"$tmp/sbom.log" || { cat "$tmp/sbom.log" >&2; exit 1; }
echo "release: wrote $dist/sbom.cdx.json"

(
	cd "$dist"
	{ printf '%s\n' install.yaml "taskdownload-operator-$chart_version.tgz" sbom.cdx.json; find image -type f; } |
		LC_ALL=C sort | xargs sha256sum >checksums.txt.tmp
	mv checksums.txt.tmp checksums.txt
)
echo "release: wrote $dist/checksums.txt"
