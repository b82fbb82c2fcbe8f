#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine, idempotently:
# apt packages, rust-src, bpf-linker linked against rustc's own LLVM, tracefs, rotel and grpcio
# (PyPI), oha (crates.io).
# Safe to run again: every step checks first.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# 1. Debian packages: tools the integration tests drive and the build needs; libssl3,
#    libgnutls30 + gnutls-bin, golang-go (and the C compiler) are the real TLS libraries and
#    toolchains the tls:: discovery tests analyse; nghttp2-client provides h2load; nftables
#    (nft) and iproute2 (ip, tc, nstat) drive the network-namespace harness (integration/src/netns.rs);
#    qemu-system-x86 and busybox-static boot Debian's kernels for the kernel matrix test
#    (scripts/kernel-vm.sh, integration/tests/kernel_matrix.rs).
APT_PKGS=(curl nginx wrk iproute2 ca-certificates python3 nghttp2-client bpftrace linux-perf libssl3 openssl libgnutls30 gnutls-bin golang-go nodejs gcc libc6-dev libssl-dev nftables qemu-system-x86 busybox-static)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx's Debian package starts a service on :80 in some environments; we do not want it.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
  $SUDO pkill -x nginx >/dev/null 2>&1 || true
fi

# 2. rust-src for -Z build-std=core (the BPF target has no prebuilt core).
if ! rustup component list --installed | grep -q '^rust-src'; then
  log "rustup component add rust-src"
  rustup component add rust-src
fi

# 3. bpf-linker built against rustc's own LLVM (22), so bitcode versions match.
if ! command -v bpf-linker >/dev/null 2>&1; then
  sysroot="$(rustc --print sysroot)"
  llvm_so="$(ls "$sysroot"/lib/libLLVM.so.22* 2>/dev/null | head -n1 || true)"
  [ -n "$llvm_so" ] || { log "no libLLVM.so.22* in $sysroot/lib"; exit 1; }
  prefix="${CARGO_HOME:-$HOME/.cargo}/llvm-22-prefix"
  mkdir -p "$prefix/lib"
  ln -sf "$llvm_so" "$prefix/lib/libLLVM.so"
  log "cargo install bpf-linker (LLVM_PREFIX=$prefix)"
  LLVM_PREFIX="$prefix" RUSTFLAGS="-C link-arg=-Wl,-rpath,$sysroot/lib" \
    cargo install --locked bpf-linker --no-default-features --features llvm-22
fi

# 4. tracefs: not needed by the receiver's raw tracepoints, but bpftrace (the benchmark's
#    floor) and tracing tools use it.
if [ ! -e /sys/kernel/tracing/events ]; then
  log "mount -t tracefs nodev /sys/kernel/tracing"
  $SUDO mount -t tracefs nodev /sys/kernel/tracing
fi

# 5. rotel (a real Rust OTel collector from PyPI) for one integration test.
if ! python3 -c "import rotel" >/dev/null 2>&1; then
  log "pip install rotel"
  pip install -q rotel || log "rotel could not be installed; the rotel test will fail"
fi
# 6. oha (fixed-rate HTTP load with latency correction) for the overhead benchmark.
if ! command -v oha >/dev/null 2>&1; then
  log "cargo install oha"
  cargo install --locked oha
fi

# 7. grpcio for the gRPC integration test (generic handlers: no protoc, no stubs).
if ! python3 -c "import grpc" >/dev/null 2>&1; then
  log "pip install grpcio"
  pip install -q grpcio || log "grpcio could not be installed; the gRPC test will fail"
fi
log "ok"
