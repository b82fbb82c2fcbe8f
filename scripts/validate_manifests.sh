#!/usr/bin/env bash
# Validates every Kubernetes manifest under deploy/ and the Helm chart rendered in both modes
# against the Kubernetes OpenAPI schemas, offline (kubernetes-validate ships the schemas;
# scripts/setup.sh installs it). The chart is rendered with `helm template` when helm is on
# PATH, else with scripts/render_chart.py (the chart's template subset).
set -euo pipefail
cd "$(dirname "$0")/.."
version="${K8S_SCHEMA_VERSION:-1.33}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
chart=deploy/helm/otel-ebpf-receiver
render() { # name values-file...
  local name="$1"; shift
  if command -v helm >/dev/null 2>&1; then
    helm template "$name" "$chart" --namespace observability "${@/#/--values=}"
  else
    python3 scripts/render_chart.py "$chart" --name "$name" --namespace observability "${@/#/--values=}"
  fi
}
render otel-ebpf-receiver > "$out/chart-daemonset.yaml"
render cart "$chart/values-sidecar.yaml" > "$out/chart-sidecar.yaml"
for f in "$out"/chart-*.yaml; do
  grep -q '^kind: ' "$f" || { echo "[validate] $f rendered no object" >&2; exit 1; }
done
files=(deploy/*.yaml deploy/collector/*.yaml "$out"/chart-*.yaml)
kubernetes-validate --strict --kubernetes-version "$version" "${files[@]}"
echo "[validate] ${#files[@]} manifest files valid against Kubernetes $version schemas"
