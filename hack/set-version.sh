#!/usr/bin/env bash
# Moves the repository to another release version in one step (make set-version VERSION=v0.2.0):
# VERSION, the chart's version and appVersion, the image config/manager names and the install
# commands in README.md and the chart's README. internal/releasetest checks that they agree.
#
#   hack/set-version.sh VERSION [ROOT]
set -euo pipefail
version=${1:?usage: hack/set-version.sh VERSION [ROOT]}
root=${2:-$(cd "$(dirname "$0")/.." && pwd)}

if [[ ! $version =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "set-version: VERSION=$version is not a semantic version such as v0.2.0" >&2
	exit 1
fi
old=$(tr -d '[:space:]' <"$root/VERSION")
if [[ $old == "$version" ]]; then
	echo "set-version: already $version"
	exit 0
fi
repo=ghcr.io/pixxel-space/taskdownload-operator

# Every file is checked before any is written, so that a failure leaves the repository as it was.
files=(VERSION dist/chart/Chart.yaml config/manager/manager.yaml README.md dist/chart/README.md)
for f in "${files[@]}"; do
	[[ -f $root/$f ]] || { echo "set-version: $root/$f is missing" >&2; exit 1; }
done
grep -q "image: $repo:$old\$" "$root/config/manager/manager.yaml" ||
	{ echo "set-version: config/manager/manager.yaml does not name $repo:$old" >&2; exit 1; }

# sed patterns: escape the dots of the old versions.
old_re=${old//./\\.} old_chart_re=${old_re#v}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$version" >"$tmp/VERSION"
sed -e "s/^version: .*/version: ${version#v}/" -e "s/^appVersion: .*/appVersion: \"$version\"/" \
	"$root/dist/chart/Chart.yaml" >"$tmp/Chart.yaml"
sed "s|image: $repo:$old_re\$|image: $repo:$version|" "$root/config/manager/manager.yaml" >"$tmp/manager.yaml"
for readme in README.md dist/chart/README.md; do
	sed -e "s/taskdownload-operator-$old_chart_re\.tgz/taskdownload-operator-${version#v}.tgz/g" \
		-e "s/VERSION=$old_re\b/VERSION=$version/g" "$root/$readme" >"$tmp/$(echo "$readme" | tr / _)"
done
cp "$tmp/VERSION" "$root/VERSION"
cp "$tmp/Chart.yaml" "$root/dist/chart/Chart.yaml"
cp "$tmp/manager.yaml" "$root/config/manager/manager.yaml"
cp "$tmp/README.md" "$root/README.md"
cp "$tmp/dist_chart_README.md" "$root/dist/chart/README.md"
echo "set-version: $old -> $version (VERSION, dist/chart/Chart.yaml, config/manager/manager.yaml, README.md, dist/chart/README.md)"
