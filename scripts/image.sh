#!/usr/bin/env bash
# Builds the otel-ebpf-receiver image without pulling any base image: a static (musl) release
# binary built on this host, put into an empty (scratch) image with buildah. Same result as
# deploy/Containerfile's final stage. Needs: the x86_64-unknown-linux-musl Rust target,
# musl-tools, buildah (Debian packages), bpf-linker (scripts/setup.sh).
# usage: scripts/image.sh [TAG]   (default otel-ebpf-receiver:0.1.0)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-otel-ebpf-receiver:0.1.0}"
export PATH="$HOME/.cargo/bin:$PATH"
rustup target list --installed | grep -qx x86_64-unknown-linux-musl \
    || rustup target add x86_64-unknown-linux-musl
command -v musl-gcc >/dev/null || apt-get install -y musl-tools
command -v buildah >/dev/null || apt-get install -y buildah
cargo build --release --locked --target x86_64-unknown-linux-musl -p otel-ebpf-receiver
bin=target/x86_64-unknown-linux-musl/release/otel-ebpf-receiver
file "$bin" | grep -q 'statically linked' || { echo "not static: $(file "$bin")" >&2; exit 1; }
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null' EXIT
buildah copy "$ctr" "$bin" /otel-ebpf-receiver
buildah copy "$ctr" config/default.yaml /etc/otel-ebpf-receiver/config.yaml
buildah config --entrypoint '["/otel-ebpf-receiver"]' \
    --cmd '["--config", "/etc/otel-ebpf-receiver/config.yaml"]' \
    --port 13133 --port 8888 "$ctr"
buildah commit "$ctr" "$tag"
echo "built $tag"
