#!/usr/bin/env bash
# Builds the receiver (release) and runs it: prints one line per HTTP span of every process on
# this host. Extra arguments go to the receiver (e.g. --config config/default.yaml, check).
# Installs only what building and running need (setup.sh --run); run it as root (no sudo needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --run
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release --bin otel-ebpf-receiver
exec ./target/release/otel-ebpf-receiver "$@"
