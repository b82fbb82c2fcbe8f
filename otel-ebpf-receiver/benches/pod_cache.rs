//! Memory of the Kubernetes pod cache: N real-shaped pods (metadata with managedFields, labels,
//! annotations, owner, spec, conditions, one container status each, as `GET /api/v1/pods`
//! returns them) applied to a `kube` reflector store, once as the API returns them and once
//! stripped to the fields the receiver uses (what it caches). Heap bytes are counted by a
//! wrapper around the receiver's allocator (requested sizes: allocator overhead excluded).
//! Also times a lookup by container id (a miss: the whole store is scanned).
//! Run: `cargo bench -p otel-ebpf-receiver --bench pod_cache` (release).

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use otel_ebpf_receiver::enrich::kubernetes::identity::{container_status, strip};
use otel_ebpf_receiver::enrich::kubernetes::test_pods::{PodSpec, pod};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes on top of the receiver binary's allocator.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INNER: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { INNER.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { INNER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { INNER.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn pods(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            let name = format!("web-{:x}-7d9f8c6b5-{i:05}", i % 40);
            let uid = format!("1b2c3d4e-aaaa-4bbb-8ccc-{i:012}");
            let id = format!("containerd://{i:064x}");
            let rs = format!("web-{:x}-7d9f8c6b5", i % 40);
            pod(&PodSpec {
                name: &name,
                uid: &uid,
                owner: Some(("ReplicaSet", &rs)),
                labels: json!({"app.kubernetes.io/name": format!("web-{:x}", i % 40),
                    "app.kubernetes.io/version": "1.2.3", "pod-template-hash": "7d9f8c6b5",
                    "team": "payments"}),
                annotations: json!({"kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z",
                    "resource.opentelemetry.io/deployment.environment.name": "prod"}),
                containers: vec![("web", &id, "docker.io/library/nginx:1.27.3")],
                ..Default::default()
            })
        })
        .collect()
}

/// Heap bytes held by a store filled with `pods` (each transformed by `f`).
fn cache_bytes(pods: &[Pod], f: impl Fn(&Pod) -> Pod) -> (isize, Writer<Pod>) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut w = Writer::<Pod>::default();
    for p in pods {
        w.apply_watcher_event(&Event::Apply(f(p)));
    }
    (LIVE.load(Ordering::Relaxed) - before, w)
}

fn main() {
    for n in [110, 10_000] {
        let input = pods(n);
        let (full, w_full) = cache_bytes(&input, Pod::clone);
        drop(w_full);
        let (stripped, w) = cache_bytes(&input, strip);
        let store = w.as_reader();
        let t0 = Instant::now();
        let rounds = 20;
        for _ in 0..rounds {
            let miss = store.find(|p| container_status(p, &"f".repeat(64)).is_some());
            assert!(miss.is_none());
        }
        let scan_us = t0.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        println!(
            "pods={n:>6}  as listed: {:>9.1} KiB ({:>6} B/pod)  cached (stripped): {:>8.1} KiB ({:>4} B/pod)  lookup miss (full scan): {scan_us:.0} µs",
            full as f64 / 1024.0,
            full / n as isize,
            stripped as f64 / 1024.0,
            stripped / n as isize,
        );
    }
}
