#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it). Runs as root: the integration tests
# load the real eBPF probes. Steps: setup (idempotent) → fmt → clippy → build → unit, golden
# and integration tests → overhead smoke benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# A one-shot build gains nothing from incremental state (about 40% of target/ otherwise).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# A clean build and test run writes about 6 GiB under target/ and a few hundred MiB in /tmp;
# say so plainly when the disk is short (the compiler's own message is a linker bus error).
free_kib="$(df -Pk . | awk 'NR == 2 { print $4 }')"
if [ "${free_kib:-0}" -lt $((8 * 1024 * 1024)) ]; then
  echo "[test] only $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }'): the build needs about 6 GiB" >&2
fi
bash scripts/validate_manifests.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The eBPF crate, for its own target (core built from rust-src; RUSTC_BOOTSTRAP for -Z).
RUSTC_BOOTSTRAP=1 cargo clippy -p otel-ebpf-probes --target bpfel-unknown-none -Z build-std=core -- -D warnings
cargo build --bins
# Unit + golden tests in parallel; integration tests (one probe set at a time) serialised.
cargo test --workspace --exclude otel-ebpf-probes --lib --bins
cargo test -p otel-ebpf-receiver --test golden
cargo test -p otel-ebpf-integration -- --test-threads=1
if [ -x integration/bench/smoke.sh ]; then bash integration/bench/smoke.sh; fi
echo "all tests passed"
