//! The node's pod watcher: `kube` runtime watcher + reflector into a shared store.
//!
//! Stage: enrich (background task). Input: the API server (list + watch of
//! `/api/v1/pods?fieldSelector=spec.nodeName=<node>`). Output: a [`Store`] of
//! [`CachedPod`]s (deserialized with only the fields used, then [`super::identity::strip`] on
//! every object before it is cached) and the counters in
//! [`KubeStats`].
//!
//! The runtime watcher does the protocol: initial list (paged), watch from its
//! resourceVersion with bookmarks, resume after a watch ends, relist on 410 Gone; errors come
//! out of the stream and [`StreamBackoff`] waits before the next try (client-go's schedule:
//! 0.8 s doubling to 30 s, reset after 120 s of health). Each error is counted; the first of
//! an outage is logged at warn, the rest at debug, and the recovery at info. The task never
//! ends on errors, and nothing in capture waits for it.

use super::CachedPod;
use super::KubeStats;
use super::identity::strip;
use futures_util::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::{Backoff, StreamBackoff};
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A client from the standard discovery (`KUBECONFIG` / `~/.kube/config`, else the in-cluster
/// service account), over rustls with the ring provider.
pub async fn client() -> anyhow::Result<Client> {
    let cfg = kube::Config::infer().await?;
    Ok(Client::try_from(cfg)?)
}

/// Starts watching the pods of `node` on the current tokio runtime; returns the store the
/// watcher fills (empty until the first list succeeds).
pub fn spawn(client: Client, node: &str, stats: Arc<KubeStats>) -> Store<CachedPod> {
    spawn_with(client, node, stats, DefaultBackoff::default()).0
}

/// [`spawn`] with a chosen retry schedule (tests use a short one); also returns the task.
pub fn spawn_with<B: Backoff + 'static>(
    client: Client,
    node: &str,
    stats: Arc<KubeStats>,
    backoff: B,
) -> (Store<CachedPod>, tokio::task::JoinHandle<()>) {
    let api: Api<CachedPod> = Api::all(client);
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let (store, writer) = reflector::store();
    let events = StreamBackoff::new(watcher::watcher(api, wc).modify(strip), backoff);
    let stream = reflect(writer, events);
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut down = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    stats.generation.fetch_add(1, Ordering::AcqRel);
                    if matches!(ev, Event::InitDone) {
                        stats.synced.store(true, Ordering::Release);
                    }
                    if down {
                        log::info!("Kubernetes API: pod watch running again");
                        down = false;
                    }
                }
                Err(e) => {
                    stats.watch_errors.fetch_add(1, Ordering::Relaxed);
                    if down {
                        log::debug!("Kubernetes pod watch: {e}");
                    } else {
                        log::warn!(
                            "Kubernetes pod watch failed ({e}); spans keep flowing without \
                             pod identity for new processes until it recovers (retrying, \
                             counted in otel_ebpf_k8s_watch_errors_total)"
                        );
                        down = true;
                    }
                }
            }
        }
    });
    (store, task)
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
