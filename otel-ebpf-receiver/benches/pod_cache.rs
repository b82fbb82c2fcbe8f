//! Memory of the Kubernetes pod cache: N real-shaped pods (metadata with managedFields, labels,
//! annotations, owner, spec, conditions, one container status each, as `GET /api/v1/pods`
//! returns them) applied to a `kube` reflector store three ways: as `k8s_openapi`'s `Pod`
//! (what a plain reflector caches), as that `Pod` with every unused field cleared, and as the
//! receiver caches them (`CachedPod`, stripped). Heap bytes are counted by a
//! wrapper around the receiver's allocator (requested sizes: allocator overhead excluded).
//! Also times a lookup by container id (a miss: the whole store is scanned).
//! Run: `cargo bench -p otel-ebpf-receiver --bench pod_cache` (release).

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use otel_ebpf_receiver::enrich::kubernetes::CachedPod;
use otel_ebpf_receiver::enrich::kubernetes::identity::{cache_form, container_status};
use otel_ebpf_receiver::enrich::kubernetes::test_pods::{PodSpec, full_pod};
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
            full_pod(&PodSpec {
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

/// `pod` with every field the receiver does not use cleared (still a `k8s_openapi` Pod).
fn cleared(pod: &Pod) -> Pod {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let c = cache_form(pod);
    let mut metadata = c.metadata;
    metadata.labels = Some(c.labels.into_iter().collect());
    metadata.annotations = Some(c.annotations.into_iter().collect());
    metadata.owner_references = c.owner.map(|(kind, name)| {
        vec![OwnerReference {
            kind,
            name,
            ..Default::default()
        }]
    });
    let mut p = Pod {
        metadata,
        ..Default::default()
    };
    let statuses = c.status.map(|s| {
        s.container_statuses
            .into_iter()
            .map(|c| k8s_openapi::api::core::v1::ContainerStatus {
                name: c.name,
                container_id: c.container_id,
                image: c.image,
                ..Default::default()
            })
            .collect()
    });
    p.status = Some(k8s_openapi::api::core::v1::PodStatus {
        container_statuses: statuses,
        ..Default::default()
    });
    p
}

/// Heap bytes held by a store filled with `pods` (each transformed by `f`).
fn cache_bytes<K>(pods: &[Pod], f: impl Fn(&Pod) -> K) -> (isize, Writer<K>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let before = LIVE.load(Ordering::Relaxed);
    let mut w = Writer::<K>::default();
    for p in pods {
        w.apply_watcher_event(&Event::Apply(f(p)));
    }
    (LIVE.load(Ordering::Relaxed) - before, w)
}

fn main() {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec as Spec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::mem::size_of;
    println!(
        "inline sizes: Pod {} B (ObjectMeta {}, PodSpec {}, PodStatus {}), ContainerStatus {} B",
        size_of::<Pod>(),
        size_of::<ObjectMeta>(),
        size_of::<Spec>(),
        size_of::<PodStatus>(),
        size_of::<ContainerStatus>()
    );
    for n in [110, 10_000] {
        let input = pods(n);
        let (full, w_full) = cache_bytes(&input, Pod::clone);
        drop(w_full);
        let (pod_cleared, w_cleared) = cache_bytes(&input, cleared);
        drop(w_cleared);
        let (stripped, w) = cache_bytes::<CachedPod>(&input, cache_form);
        let store = w.as_reader();
        let t0 = Instant::now();
        let rounds = 20;
        for _ in 0..rounds {
            let miss = store.find(|p| container_status(p, &"f".repeat(64)).is_some());
            assert!(miss.is_none());
        }
        let scan_us = t0.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        println!(
            "pods={n:>6}  Pod as listed: {:>9.1} KiB ({:>6} B/pod)  Pod cleared: {:>8.1} KiB ({:>4} B/pod)  cached (CachedPod): {:>8.1} KiB ({:>4} B/pod)  lookup miss (full scan): {scan_us:.0} µs",
            full as f64 / 1024.0,
            full / n as isize,
            pod_cleared as f64 / 1024.0,
            pod_cleared / n as isize,
            stripped as f64 / 1024.0,
            stripped / n as isize,
        );
    }
}
