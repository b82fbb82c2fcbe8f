#!/usr/bin/env bash
# CI smoke version of the overhead benchmark (seconds, not minutes): nginx + oha at a low
# fixed rate with the receiver attached (default config: kernel timing on; prints the kernel
# timing BPF µs/request), exporting to a counting OTLP sink. Fails (exit 1) if
# SERVER or CLIENT span completeness drops below 99%. Uses the debug build made by
# scripts/test.sh; run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build -q -p otel-ebpf-receiver -p otel-ebpf-integration --bins
"${CARGO_TARGET_DIR:-target}"/debug/bench --smoke --smoke-rate "${SMOKE_RATE:-2000}" --fixed-secs "${SMOKE_SECS:-5}"
