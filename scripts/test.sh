#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it). Runs as root: the integration tests
# load the real eBPF probes. Steps: setup (idempotent) → fmt → clippy → build → unit, golden
# and integration tests → overhead smoke benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo build --bins
# Unit + golden tests in parallel; integration tests (one probe set at a time) serialised.
cargo test --workspace --exclude otel-ebpf-probes --lib --bins
cargo test -p otel-ebpf-receiver --test golden
cargo test -p otel-ebpf-integration -- --test-threads=1
if [ -x integration/bench/smoke.sh ]; then bash integration/bench/smoke.sh; fi
echo "all tests passed"
