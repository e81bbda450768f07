#!/usr/bin/env bash
# Moves the repository to another release version in one step (make set-version VERSION=v0.2.0):
# VERSION, the chart's version and appVersion, the image config/manager and the sample Jobs name, and
# the install commands in README.md and the chart's README. internal/releasetest checks that they agree.
#
#   hack/set-version.sh VERSION [ROOT]
set -euo pipefail
version=${1:?usage: hack/set-version.sh VERSION [ROOT]}
root=${2:-$(cd "$(dirname "$0")/.." && pwd)}

if [[ ! $version =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]]; then
	echo "set-version: VERSION=$version is not a semantic version such as v0.2.0" >&2
	exit 1
fi
samples=(config/samples/taskdownload_job_fetch.yaml config/samples/taskdownload_job_gate.yaml)
for f in VERSION dist/chart/Chart.yaml config/manager/manager.yaml "${samples[@]}" README.md dist/chart/README.md; do
	[[ -f $root/$f ]] || { echo "set-version: $root/$f is missing" >&2; exit 1; }
done
old=$(tr -d '[:space:]' <"$root/VERSION")
if [[ $old == "$version" ]]; then
	echo "set-version: already $version"
	exit 0
fi
old_chart=${old#v} chart=${version#v}
repo=ghcr.io/pixxel-space/taskdownload-operator

# Every place is checked before any file is written, so that a failure leaves the repository as it was.
need() { # FILE TEXT: FILE must hold TEXT, which set-version rewrites
	grep -qF -- "$2" "$root/$1" || { echo "set-version: $1 does not hold '$2'; nothing changed" >&2; exit 1; }
}
need dist/chart/Chart.yaml "version: $old_chart"
need dist/chart/Chart.yaml "appVersion: \"$old\""
need config/manager/manager.yaml "image: $repo:$old"
for f in "${samples[@]}"; do need "$f" "image: $repo:$old"; done
need README.md "taskdownload-operator-$old_chart.tgz"
need README.md "make release VERSION=$old\`"
need dist/chart/README.md "taskdownload-operator-$old_chart.tgz"

# sed patterns (POSIX basic expressions, GNU and BSD sed alike): the old versions, dots escaped.
old_re=${old//./\\.} old_chart_re=${old_chart//./\\.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$version" >"$tmp/VERSION"
sed -e "s/^version: $old_chart_re\$/version: $chart/" -e "s/^appVersion: \"$old_re\"\$/appVersion: \"$version\"/" \
	"$root/dist/chart/Chart.yaml" >"$tmp/Chart.yaml"
sed "s|image: $repo:$old_re\$|image: $repo:$version|" "$root/config/manager/manager.yaml" >"$tmp/manager.yaml"
for f in "${samples[@]}"; do
	sed "s|image: $repo:$old_re\$|image: $repo:$version|" "$root/$f" >"$tmp/$(basename "$f")"
done
for readme in README.md dist/chart/README.md; do
	sed -e "s/taskdownload-operator-$old_chart_re\.tgz/taskdownload-operator-$chart.tgz/g" \
		-e "s/make release VERSION=$old_re\`/make release VERSION=$version\`/g" \
		"$root/$readme" >"$tmp/$(echo "$readme" | tr / _)"
done
cp "$tmp/VERSION" "$root/VERSION"
cp "$tmp/Chart.yaml" "$root/dist/chart/Chart.yaml"
cp "$tmp/manager.yaml" "$root/config/manager/manager.yaml"
for f in "${samples[@]}"; do cp "$tmp/$(basename "$f")" "$root/$f"; done
cp "$tmp/README.md" "$root/README.md"
cp "$tmp/dist_chart_README.md" "$root/dist/chart/README.md"
echo "set-version: $old -> $version (VERSION, dist/chart/Chart.yaml, config/manager/manager.yaml, ${samples[*]}, README.md, dist/chart/README.md)"
