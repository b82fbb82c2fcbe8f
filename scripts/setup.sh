#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine, idempotently (every step checks
# first, so it is safe to run again). Works as root without sudo; as another user it uses sudo.
#
#   bash scripts/setup.sh --run   what building and running the receiver needs: a C linker,
#                                 CA certificates, rust-src, bpf-linker (scripts/run.sh)
#   bash scripts/setup.sh         that, plus the test tools: nginx, wrk, h2load, curl, bpftrace,
#                                 perf, the TLS libraries and toolchains (OpenSSL, GnuTLS, Go,
#                                 Node.js), nftables/iproute2, tracefs, rotel and grpcio (PyPI),
#                                 oha (crates.io) (scripts/test.sh)
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
MODE=test
case "${1:-}" in
  --run) MODE=run ;;
  --test | "") MODE=test ;;
  *) log "usage: setup.sh [--run | --test]"; exit 2 ;;
esac
# Root needs no sudo (and a fresh root-only machine has none); other users need it.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { log "not root and no sudo: run as root"; exit 1; }
  SUDO="sudo"
fi

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. Debian packages the build needs: the C linker and libc objects rustc links with, and CA
#    certificates for cargo's downloads.
apt_install ca-certificates gcc libc6-dev

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

if [ "$MODE" = run ]; then
  log "ok (run)"
  exit 0
fi

# 4. Debian packages the tests drive: curl, nginx, wrk, nghttp2-client (h2load); bpftrace and
#    linux-perf (the benchmark); libssl3, libgnutls30 + gnutls-bin, golang-go, nodejs and
#    libssl-dev are the real TLS libraries and toolchains the tls:: discovery tests analyse;
#    nftables (nft) and iproute2 (ip, tc, nstat) drive the network-namespace harness
#    (integration/src/netns.rs); bpftool lists loaded BPF programs (the shutdown fault test
#    checks none is left); qemu-system-x86 and busybox-static boot Debian's kernels for the
#    kernel matrix test (scripts/kernel-vm.sh, integration/tests/kernel_matrix.rs).
had_nginx=0
dpkg-query -W -f='${Status}' nginx 2>/dev/null | grep -q "install ok installed" && had_nginx=1
apt_install curl nginx wrk iproute2 python3 nghttp2-client bpftrace bpftool linux-perf libssl3 openssl \
  libgnutls30 gnutls-bin golang-go nodejs libssl-dev nftables qemu-system-x86 busybox-static
if [ "$had_nginx" -eq 0 ]; then
  # nginx's Debian package starts a service on :80 in some environments; we do not want it.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
  $SUDO pkill -x nginx >/dev/null 2>&1 || true
fi

# 5. tracefs: not needed by the receiver's raw tracepoints, but bpftrace (the benchmark's
#    floor) and tracing tools use it.
if [ ! -e /sys/kernel/tracing/events ]; then
  log "mount -t tracefs nodev /sys/kernel/tracing"
  $SUDO mount -t tracefs nodev /sys/kernel/tracing
fi

# 6. rotel (a real Rust OTel collector from PyPI) for one integration test.
if ! python3 -c "import rotel" >/dev/null 2>&1; then
  log "pip install rotel"
  pip install -q rotel || log "rotel could not be installed; the rotel test will fail"
fi

# 7. oha (fixed-rate HTTP load with latency correction) for the overhead benchmark.
if ! command -v oha >/dev/null 2>&1; then
  log "cargo install oha"
  cargo install --locked oha
fi

# 8. grpcio for the gRPC integration test (generic handlers: no protoc, no stubs).
if ! python3 -c "import grpc" >/dev/null 2>&1; then
  log "pip install grpcio"
  pip install -q grpcio || log "grpcio could not be installed; the gRPC test will fail"
fi

# 8. kubernetes-validate (offline Kubernetes schemas) for the deploy/ manifests and the chart.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  log "pip install kubernetes-validate"
  pip install -q kubernetes-validate || log "kubernetes-validate could not be installed; manifest validation will fail"
fi
log "ok"
