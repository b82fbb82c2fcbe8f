//! Kubernetes workload identity: which pod and container a process runs in.
//!
//! Stage: enrich (a source for the process resource). Inputs: the process's cgroup ids
//! ([`crate::enrich::cgroup::CgroupIds`]) and a pod cache filled either by a `kube` runtime
//! watcher + reflector of the pods on this node ([`watch`], field selector
//! `spec.nodeName=<node>`) or, in sidecar mode, by the Downward API ([`sidecar`]). Output: a
//! [`PodIdentity`] ([`identity::pod_identity`]) per process, our own plain attribute list.
//!
//! The API is found with `kube::Config::infer` (`KUBECONFIG`, else the in-cluster service
//! account); the node is `K8S_NODE_NAME`, else the host name. The API being unreachable (at
//! start or later) only degrades enrichment: errors are counted
//! ([`KubeStats::watch_errors`]), logged once per outage, and the watcher retries with
//! backoff, resuming its watch or relisting (410 Gone); capture never waits for it.
//!
//! Limits: the cache holds the pods of one node (kubelet's default maximum is 110) stripped to
//! the fields used ([`cached::CachedPod`], [`identity::strip`]); a lookup scans them (≤ a few hundred container
//! statuses), and happens once per process (the enricher caches resources). A process whose
//! pod is not cached yet is looked up again when the cache changes ([`Kubernetes::generation`]).
//! This is the only module that may use `kube` / `k8s-openapi`.

pub mod cached;
pub mod identity;
pub mod sidecar;
pub mod watch;

/// Pod objects shaped as a real API server returns them (tests and the pod-cache benchmark).
#[doc(hidden)]
pub mod test_pods;

use crate::config::{KubernetesConfig, KubernetesEnabled};
use crate::enrich::cgroup::CgroupIds;
pub use cached::CachedPod;
pub use identity::PodIdentity;
use kube::runtime::reflector::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters of the Kubernetes source, shown on the self-telemetry endpoint.
#[derive(Debug, Default)]
pub struct KubeStats {
    /// Watch/list failures, each retry counted (errors). `otel_ebpf_k8s_watch_errors_total`.
    pub watch_errors: AtomicU64,
    /// Containerised processes whose pod was not cached when looked up (lookups).
    /// `otel_ebpf_k8s_pod_lookup_misses_total`.
    pub pod_misses: AtomicU64,
    /// Bumped on every watch event applied to the cache (and on relists).
    generation: AtomicU64,
    /// True once the first full list is in the cache.
    synced: AtomicBool,
}

impl KubeStats {
    /// Pods cache changes so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// True once the initial list has been applied.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

/// Where pods come from.
#[derive(Clone)]
enum Source {
    /// The pods of this node, kept by the watcher.
    Watch(Store<CachedPod>),
    /// Sidecar mode: this pod only (from the Downward API).
    Own(Arc<CachedPod>),
}

/// Result of looking a process up.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// The process is not in a pod (no pod UID and no container id in its cgroup), or in
    /// sidecar mode belongs to another pod.
    NotInPod,
    /// Its pod (and container, when matched).
    Found(Box<PodIdentity>),
    /// It is in a container or pod that is not (yet) in the cache.
    Missing,
}

/// The pod cache and node name; cheap to clone (shared store).
#[derive(Clone)]
pub struct Kubernetes {
    source: Source,
    node: String,
    stats: Arc<KubeStats>,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("node", &self.node)
            .field("sidecar", &matches!(self.source, Source::Own(_)))
            .finish()
    }
}

impl Kubernetes {
    /// The identity of a process with cgroup ids `ids`: matched by container id first, else
    /// by pod UID (container unknown).
    pub fn lookup(&self, ids: &CgroupIds) -> Lookup {
        if ids.container_id.is_none() && ids.pod_uid.is_none() {
            return Lookup::NotInPod;
        }
        let cid = ids.container_id.as_deref();
        let uid_is = |p: &CachedPod, uid: &str| p.metadata.uid.as_deref() == Some(uid);
        let found = match &self.source {
            Source::Own(p) => {
                let mine = match (&ids.pod_uid, cid) {
                    (Some(uid), _) => uid_is(p, uid),
                    (None, Some(c)) => identity::container_status(p, c).is_some(),
                    (None, None) => false,
                };
                if !mine {
                    return Lookup::NotInPod;
                }
                Some(identity::pod_identity(p, cid, &self.node))
            }
            Source::Watch(store) => {
                let by_container =
                    cid.and_then(|c| store.find(|p| identity::container_status(p, c).is_some()));
                let by_uid = || {
                    let uid = ids.pod_uid.as_deref()?;
                    store.find(|p| uid_is(p, uid))
                };
                by_container
                    .or_else(by_uid)
                    .map(|p| identity::pod_identity(&p, cid, &self.node))
            }
        };
        match found {
            Some(id) => Lookup::Found(Box::new(id)),
            None => {
                self.stats.pod_misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Missing
            }
        }
    }

    /// Changes applied to the cache so far: a [`Lookup::Missing`] is worth retrying once this
    /// moved.
    pub fn generation(&self) -> u64 {
        self.stats.generation()
    }

    /// True in sidecar mode (only this pod's processes are exported).
    pub fn is_sidecar(&self) -> bool {
        matches!(self.source, Source::Own(_))
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<KubeStats> {
        &self.stats
    }

    /// The node name stamped as `k8s.node.name`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Number of cached pods.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Watch(s) => s.len(),
            Source::Own(_) => 1,
        }
    }

    /// True when no pod is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
impl Kubernetes {
    /// An empty watched cache for node `node`, and its writer (tests).
    pub(crate) fn test_watch(
        node: &str,
    ) -> (Self, kube::runtime::reflector::store::Writer<CachedPod>) {
        let w = kube::runtime::reflector::store::Writer::<CachedPod>::default();
        let k = Self {
            source: Source::Watch(w.as_reader()),
            node: node.into(),
            stats: Arc::default(),
        };
        (k, w)
    }

    /// Applies `pod` (stripped) as a watch event would (tests).
    pub(crate) fn test_apply(
        &self,
        w: &mut kube::runtime::reflector::store::Writer<CachedPod>,
        pod: &CachedPod,
    ) {
        let mut p = pod.clone();
        identity::strip(&mut p);
        w.apply_watcher_event(&kube::runtime::watcher::Event::Apply(p));
        self.stats.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Why Kubernetes enrichment could not start (only with `enabled: true`).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No kubeconfig and not in a cluster, or the kubeconfig is unusable.
    #[error(
        "receiver.kubernetes.enabled is true but no Kubernetes API was found ({0}): set \
         KUBECONFIG, run in a pod with a service account, set the Downward API variables \
         K8S_POD_NAME/K8S_NAMESPACE_NAME/K8S_POD_UID (sidecar mode), or set enabled: auto"
    )]
    NoApi(String),
}

/// Environment lookup (the process environment in production, a map in tests).
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// True when `auto` should turn enrichment on: in a pod (`KUBERNETES_SERVICE_HOST`), with
/// `KUBECONFIG` set, or with the sidecar Downward API variables.
pub fn auto_enabled(env: Env) -> bool {
    [
        "KUBERNETES_SERVICE_HOST",
        "KUBECONFIG",
        sidecar::ENV_POD_UID,
    ]
    .iter()
    .any(|k| env(k).is_some_and(|v| !v.is_empty()))
}

/// The node name: `K8S_NODE_NAME`, else `host_name`.
pub fn node_name(env: Env, host_name: &str) -> String {
    env("K8S_NODE_NAME")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| host_name.to_string())
}

/// Starts Kubernetes enrichment per `cfg` (must run inside a tokio runtime): `Ok(None)` when
/// off (`false`, or `auto` outside a cluster, or `auto` with an unusable kubeconfig, logged);
/// sidecar mode when the Downward API variables are set; else the node pod watcher. An API
/// server that is down is not an error (the watcher retries).
pub async fn start(
    cfg: &KubernetesConfig,
    env: Env<'_>,
    host_name: &str,
) -> Result<Option<Kubernetes>, StartError> {
    let on = match cfg.enabled {
        KubernetesEnabled::False => return Ok(None),
        KubernetesEnabled::True => true,
        KubernetesEnabled::Auto => auto_enabled(env),
    };
    if !on {
        return Ok(None);
    }
    let node = node_name(env, host_name);
    let stats = Arc::new(KubeStats::default());
    if let Some(pod) = sidecar::own_pod(env, std::path::Path::new(sidecar::PODINFO_DIR)) {
        log::info!(
            "Kubernetes sidecar mode: pod {}/{} (Downward API)",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        stats.synced.store(true, Ordering::Release);
        return Ok(Some(Kubernetes {
            source: Source::Own(Arc::new(pod)),
            node,
            stats,
        }));
    }
    let client = match watch::client().await {
        Ok(c) => c,
        Err(e) if cfg.enabled == KubernetesEnabled::True => {
            return Err(StartError::NoApi(e.to_string()));
        }
        Err(e) => {
            log::warn!("Kubernetes enrichment off: no usable API configuration ({e})");
            return Ok(None);
        }
    };
    log::info!("Kubernetes enrichment: watching the pods of node {node}");
    let store = watch::spawn(client, &node, Arc::clone(&stats));
    Ok(Some(Kubernetes {
        source: Source::Watch(store),
        node,
        stats,
    }))
}

#[cfg(test)]
mod tests;
