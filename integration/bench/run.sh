#!/usr/bin/env bash
# The overhead benchmark (docs/overhead.md): release build, then A/B pairs of nginx + wrk
# (saturation) and nginx + oha (fixed rates); the receiver runs with its default config (B:
# sampled layer timing on) and without layer timing (B-off); the bpftrace floors, HTTP/2, HTTPS
# and the syscall tax. Prints every target as met / not met.
# Prints a table; writes bench-report.json (or $BENCH_JSON). Extra arguments go to `bench`
# (see `bench --help`), e.g. `--pairs 5`, `--no-kernel-timing-ab` or `--soak-secs 600`. Honours
# CARGO_TARGET_DIR. Run as root on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release -p otel-ebpf-receiver -p otel-ebpf-integration --bins
"${CARGO_TARGET_DIR:-target}"/release/bench --json "${BENCH_JSON:-bench-report.json}" "$@"
