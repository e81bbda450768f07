#!/usr/bin/env bash
# Copies the CRDs generated in config/crd/bases into the Helm chart, wrapped in the chart's
# crd.enabled / crd.keep switches. Run by `make manifests`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist/chart/templates/crd
mkdir -p "$out"
for src in config/crd/bases/*.yaml; do
  name=$(sed -n 's/^  name: \(.*\)$/\1/p' "$src" | head -1)
  {
    echo '{{- if .Values.crd.enabled }}'
    sed -e '/^---$/d' \
        -e 's/^  annotations:$/  annotations:\n    {{- if .Values.crd.keep }}\n    "helm.sh\/resource-policy": keep\n    {{- end }}/' "$src"
    echo '{{- end }}'
  } > "$out/$name.yaml"
done
