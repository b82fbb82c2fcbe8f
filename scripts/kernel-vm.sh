#!/usr/bin/env bash
# Boots a distribution kernel under QEMU with the receiver and a real workload inside, and
# prints the guest's serial console (the kernel matrix test, integration/tests/kernel_matrix.rs,
# parses it). Runs as root on Debian (apt-get download).
#
#   kernel-vm.sh fetch SERIES            download and unpack Debian's newest
#                                        linux-image-SERIES*-cloud-amd64 (6.1, 6.12) once;
#                                        prints the vmlinuz path
#   kernel-vm.sh initramfs OUT RECEIVER  build an initramfs (busybox-static, the receiver and
#                                        its libraries, /init running the workload) at OUT
#   kernel-vm.sh boot VMLINUZ INITRD HOOKS [TIMEOUT_S] [CHECK]
#                                        boot it with receiver.capture_hooks: HOOKS
#                                        (auto|fentry|kprobe|tracepoint), run `check` first
#                                        when CHECK is 1; prints the console
#
# Kernels are cached in $OTEL_EBPF_KERNEL_CACHE (default /var/cache/otel-ebpf-receiver/kernels,
# outside target/ so `cargo clean` keeps them); a second fetch does no network IO.
# Acceleration: KVM when /dev/kvm opens and a KVM boot reaches /init, else software emulation
# (`-accel tcg -cpu max`; `-enable-kvm -cpu host` crashed at boot on nested-virtualised hosts).
# OTEL_EBPF_VM_ACCEL=tcg|kvm forces one.
set -euo pipefail

CACHE="${OTEL_EBPF_KERNEL_CACHE:-/var/cache/otel-ebpf-receiver/kernels}"
log() { printf '[kernel-vm] %s\n' "$*" >&2; }

# The newest linux-image-<series>*-cloud-amd64-unsigned package of the apt sources (the
# unsigned one carries the same kernel image as the signed meta package's without shim
# dependencies).
newest_package() {
  local series="$1" re
  case "$series" in
    6.1) re='^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' ;;
    *) re="^linux-image-${series//./\\.}\\.[0-9]+\\+deb[0-9]+-cloud-amd64-unsigned\$" ;;
  esac
  apt-cache search --names-only "$re" | awk '{print $1}' | sort -V | tail -n 1
}

cmd_fetch() {
  local series="$1" pkg dir
  mkdir -p "$CACHE"
  # Offline or no apt lists: take what the cache has for this series.
  pkg="$(newest_package "$series" || true)"
  if [ -z "$pkg" ]; then
    dir="$(ls -d "$CACHE"/linux-image-"$series"[.-]*-cloud-amd64-unsigned 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$dir" ] || { log "no linux-image-$series*-cloud-amd64 package in the apt sources (run apt-get update) and none cached"; exit 1; }
  else
    dir="$CACHE/$pkg"
    if [ ! -d "$dir/boot" ]; then
      log "downloading $pkg"
      local tmp
      tmp="$(mktemp -d "$CACHE/.dl.XXXXXX")"
      (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1 || { chown _apt "$tmp" 2>/dev/null; apt-get download -q "$pkg" >/dev/null; })
      dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
      rm -rf "$dir"
      mkdir -p "$dir"
      mv "$tmp/x/boot" "$dir/boot"
      rm -rf "$tmp"
    fi
  fi
  ls "$dir"/boot/vmlinuz-* | head -n 1
}

# Copies an executable and every library it loads (ldd) into the tree at $1.
copy_with_libs() {
  local root="$1" bin="$2" dest="$3"
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$bin" "$root$dest"
  local libs
  libs="$(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true)" # none for a static binary
  for lib in $libs; do
    [ -e "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -Ln "$lib" "$root$lib"
  done
}

cmd_initramfs() {
  local out="$1" receiver="$2" root
  command -v busybox >/dev/null || { log "busybox missing: apt-get install busybox-static (scripts/setup.sh)"; exit 1; }
  busybox --list | grep -x httpd >/dev/null || { log "this busybox has no httpd applet: install busybox-static"; exit 1; }
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,www,etc,run}
  cp "$(command -v busybox)" "$root/bin/busybox"
  for a in $(busybox --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  # The receiver without debug info (a debug build is hundreds of MB; the guest unpacks the
  # initramfs into RAM under emulation).
  copy_with_libs "$root" "$receiver" /bin/otel-ebpf-receiver
  strip --strip-debug "$root/bin/otel-ebpf-receiver" 2>/dev/null || true
  # TLS through the system libssl: openssl s_server and s_client with the host's libssl and
  # ld.so.cache (the receiver attaches to the libssl it names at start-up), an ECDSA P-256
  # certificate made here (cheap handshakes under emulation).
  copy_with_libs "$root" "$(command -v openssl)" /bin/openssl
  cp /etc/ld.so.cache "$root/etc/ld.so.cache"
  mkdir -p "$root/etc/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -keyout "$root/etc/tls/key.pem" -out "$root/etc/tls/cert.pem" 2>/dev/null
  printf 'hello from the kernel matrix\n' > "$root/www/index.html"
  printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
  cat > "$root/init" <<'INIT'
#!/bin/sh
# The guest: mounts, starts the receiver (console export), waits until it captures, runs the
# workload, stops the receiver and prints its output between markers, then powers off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ip link set lo up
HOOKS=auto
CHECK=0
for w in $(cat /proc/cmdline); do
  case "$w" in hooks=*) HOOKS="${w#hooks=}" ;; check=*) CHECK="${w#check=}" ;; esac
done
echo "KMATRIX-BOOTED $(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
cat > /etc/receiver.yaml <<EOF
receiver:
  capture_hooks: $HOOKS
exporters:
  console: true
  flush_interval_seconds: 0.2
EOF
if [ "$CHECK" = 1 ]; then
  echo "KMATRIX-CHECK-BEGIN"
  /bin/otel-ebpf-receiver --config /etc/receiver.yaml check 2>&1
  echo "KMATRIX-CHECK-END rc=$?"
fi
START=$(cut -d' ' -f1 /proc/uptime)
httpd -p 127.0.0.1:8080 -h /www
openssl s_server -accept 127.0.0.1:4433 -cert /etc/tls/cert.pem -key /etc/tls/key.pem -www -quiet >/dev/null 2>&1 &
RUST_LOG=info /bin/otel-ebpf-receiver --config /etc/receiver.yaml > /tmp/out 2> /tmp/err &
RPID=$!
i=0
while [ $i -lt 1500 ] && ! grep -q capturing /tmp/err; do
  kill -0 $RPID 2>/dev/null || break
  sleep 0.2; i=$((i + 1))
done
echo "KMATRIX-READY uptime=$(cut -d' ' -f1 /proc/uptime) receiver_started_at=$START"
# HTTP/1: busybox httpd (a process forked per connection) and busybox wget (a short-lived
# process per request).
for n in 1 2 3; do wget -q -O /dev/null "http://127.0.0.1:8080/index.html?n=$n" || echo "KMATRIX-WGET-FAILED $n"; done
wget -q -O /dev/null "http://127.0.0.1:8080/missing.html" 2>/dev/null
# HTTPS through libssl at both ends (openssl s_server -www answers with a status page),
# once the receiver has attached to libssl (it does so after it starts capturing).
i=0
while [ $i -lt 300 ] && ! grep -q "system libraries pinned" /tmp/err; do sleep 0.2; i=$((i + 1)); done
printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:4433 -quiet >/dev/null 2>&1 || echo "KMATRIX-TLS-FAILED"
sleep 2
kill -TERM $RPID
i=0
while [ $i -lt 100 ] && kill -0 $RPID 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
echo "KMATRIX-OUT-BEGIN"
cat /tmp/out
echo "KMATRIX-OUT-END"
echo "KMATRIX-ERR-BEGIN"
cat /tmp/err
echo "KMATRIX-ERR-END"
echo "KMATRIX-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
INIT
  chmod +x "$root/init"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) > "$out.tmp"
  mv "$out.tmp" "$out"
}

qemu_run() {
  local accel="$1" vmlinuz="$2" initrd="$3" hooks="$4" timeout_s="$5" check="$6"
  local cpu=(-accel tcg -cpu max)
  [ "$accel" = kvm ] && cpu=(-enable-kvm -cpu host)
  timeout "$timeout_s" qemu-system-x86_64 "${cpu[@]}" -m 1536 -smp 2 -nographic -no-reboot \
    -nodefaults -serial stdio -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 hooks=$hooks check=$check" 2>&1
}

cmd_boot() {
  local vmlinuz="$1" initrd="$2" hooks="$3" timeout_s="${4:-300}" check="${5:-0}"
  local accel="${OTEL_EBPF_VM_ACCEL:-}"
  if [ -z "$accel" ]; then
    accel=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
      # A KVM boot that does not finish within 90 s (or crashes) means software emulation.
      if qemu_run kvm "$vmlinuz" "$initrd" "$hooks" 90 "$check" > /tmp/kernel-vm.$$.kvm 2>&1 \
        && grep -q KMATRIX-DONE /tmp/kernel-vm.$$.kvm; then
        echo "KMATRIX-ACCEL kvm"
        cat /tmp/kernel-vm.$$.kvm
        rm -f /tmp/kernel-vm.$$.kvm
        return 0
      fi
      log "KVM boot failed (see below), falling back to -accel tcg -cpu max"
      tail -n 5 /tmp/kernel-vm.$$.kvm >&2 || true
      rm -f /tmp/kernel-vm.$$.kvm
    fi
  fi
  echo "KMATRIX-ACCEL $accel"
  qemu_run "$accel" "$vmlinuz" "$initrd" "$hooks" "$timeout_s" "$check"
}

case "${1:-}" in
  fetch) cmd_fetch "$2" ;;
  initramfs) cmd_initramfs "$2" "$3" ;;
  boot) shift; cmd_boot "$@" ;;
  *) echo "usage: $0 fetch SERIES | initramfs OUT RECEIVER | boot VMLINUZ INITRD HOOKS [TIMEOUT_S]" >&2; exit 2 ;;
esac
