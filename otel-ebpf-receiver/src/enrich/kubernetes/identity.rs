//! Pod → workload identity (pure: no IO, no API).
//!
//! Input: one (stripped) [`CachedPod`], the container id of a process (if its cgroup named one) and
//! the node name. Output: a [`PodIdentity`], our own plain attribute list, by the OpenTelemetry
//! semantic conventions for Kubernetes:
//! - `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.node.name`, and when the container
//!   id matches one of `status.{,init,ephemeral}ContainerStatuses[].containerID`:
//!   `k8s.container.name`, `container.image.name` and the image tag ([`PodIdentity::image_tag`],
//!   `container.image.tags`; not emitted by the enricher: a string array);
//! - the controlling owner: `k8s.replicaset.name` + `k8s.deployment.name` (the ReplicaSet's name
//!   without its pod-template-hash suffix: no ReplicaSet watch needed), `k8s.statefulset.name`,
//!   `k8s.daemonset.name`, `k8s.job.name` + `k8s.cronjob.name` (the Job's name without its
//!   numeric schedule suffix);
//! - `service.name`: annotation `resource.opentelemetry.io/service.name` → label
//!   `app.kubernetes.io/instance` → `app.kubernetes.io/name` → deployment → replicaset →
//!   statefulset → daemonset → cronjob → job → pod → container (the process's own
//!   `OTEL_SERVICE_NAME` is applied before this, by the caller);
//! - `service.namespace` (annotation, else the namespace), `service.version` (annotation, label
//!   `app.kubernetes.io/version`, image tag), `service.instance.id` (annotation, else
//!   `<namespace>.<pod>.<container>`);
//! - every other annotation `resource.opentelemetry.io/<key>` as attribute `<key>`.
//!
//! Limits: the owner suffix rules are name heuristics (a ReplicaSet not made by a Deployment
//! whose name ends in `-<hash-like word>` is reported with a deployment too, as every peer does).

use super::cached::{CachedContainer, CachedPod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use otel_ebpf_semconv::k8s as n;
use std::borrow::Cow;

/// Workload identity of one process in a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodIdentity {
    /// String resource attributes (`k8s.*`, `container.image.name`, annotation-given keys), in
    /// a fixed order; never contains the `service.*` keys below.
    pub attributes: Vec<(Cow<'static, str>, String)>,
    /// `container.image.tags` (one tag) when the container's image names a tag.
    pub image_tag: Option<String>,
    /// `service.name` by the Kubernetes rules (never empty).
    pub service_name: String,
    /// `service.namespace`.
    pub service_namespace: String,
    /// `service.version`, when any source gives one.
    pub service_version: Option<String>,
    /// `service.instance.id`, when the container is known (or the annotation sets it).
    pub service_instance_id: Option<String>,
}

/// The identity of a process whose container id is `container_id` (None: only the pod is
/// known, e.g. matched by pod UID) in `pod` on node `node` (empty: `k8s.node.name` omitted).
pub fn pod_identity(pod: &CachedPod, container_id: Option<&str>, node: &str) -> PodIdentity {
    let meta = &pod.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let pod_name = meta.name.clone().unwrap_or_default();
    let status = container_id.and_then(|id| container_status(pod, id));
    let annotation = |key: &str| {
        pod.annotations()
            .find(|(k, _)| k.strip_prefix(n::ANNOTATION_RESOURCE_PREFIX) == Some(key))
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
    };
    let label = |key: &str| pod.label(key).filter(|v| !v.is_empty()).map(str::to_string);

    let mut attributes: Vec<(Cow<'static, str>, String)> = Vec::new();
    let mut push = |k: &'static str, v: &str| {
        if !v.is_empty() {
            attributes.push((Cow::Borrowed(k), v.to_string()));
        }
    };
    push(n::K8S_NAMESPACE_NAME, &ns);
    push(n::K8S_POD_NAME, &pod_name);
    push(n::K8S_POD_UID, meta.uid.as_deref().unwrap_or_default());
    push(n::K8S_NODE_NAME, node);
    let owners = Owners::of(pod);
    for (k, v) in owners.attributes() {
        push(k, v);
    }
    let (image_name, image_tag) = status
        .map(|s| split_image(&s.image))
        .unwrap_or((None, None));
    if let Some(s) = status {
        push(n::K8S_CONTAINER_NAME, &s.name);
    }
    if let Some(img) = image_name {
        push(n::CONTAINER_IMAGE_NAME, img);
    }

    let container = status.map(|s| s.name.as_str());
    let service_name = annotation("service.name")
        .or_else(|| label(n::LABEL_APP_INSTANCE))
        .or_else(|| label(n::LABEL_APP_NAME))
        .or_else(|| owners.service_name().map(str::to_string))
        .or_else(|| Some(pod_name.clone()).filter(|p| !p.is_empty()))
        .or_else(|| container.map(str::to_string))
        .unwrap_or_else(|| otel_ebpf_semconv::value::UNKNOWN_SERVICE.to_string());
    let service_namespace = annotation("service.namespace").unwrap_or_else(|| ns.clone());
    let service_version = annotation("service.version")
        .or_else(|| label(n::LABEL_APP_VERSION))
        .or_else(|| image_tag.map(str::to_string));
    let service_instance_id = annotation("service.instance.id")
        .or_else(|| container.map(|c| format!("{ns}.{pod_name}.{c}")));

    // Other resource.opentelemetry.io/<key> annotations, in the API's (key) order.
    const OURS: [&str; 4] = [
        "service.name",
        "service.namespace",
        "service.version",
        "service.instance.id",
    ];
    for (k, v) in pod.annotations() {
        let Some(key) = k.strip_prefix(n::ANNOTATION_RESOURCE_PREFIX) else {
            continue;
        };
        if key.is_empty() || OURS.contains(&key) || attributes.iter().any(|(a, _)| a == key) {
            continue;
        }
        attributes.push((Cow::Owned(key.to_string()), v.to_string()));
    }
    PodIdentity {
        attributes,
        image_tag: image_tag.map(str::to_string),
        service_name,
        service_namespace,
        service_version,
        service_instance_id,
    }
}

/// The status of the container whose runtime id (`<runtime>://<id>`) is `id`.
pub fn container_status<'a>(pod: &'a CachedPod, id: &str) -> Option<&'a CachedContainer> {
    pod.status.as_ref()?.all().find(|s| {
        s.container_id
            .as_deref()
            .map(|c| c.rsplit_once("://").map_or(c, |(_, i)| i))
            .is_some_and(|c| c.eq_ignore_ascii_case(id))
    })
}

/// The controlling owner and what it implies.
#[derive(Default)]
struct Owners<'a> {
    replicaset: Option<&'a str>,
    deployment: Option<&'a str>,
    statefulset: Option<&'a str>,
    daemonset: Option<&'a str>,
    job: Option<&'a str>,
    cronjob: Option<&'a str>,
}

impl<'a> Owners<'a> {
    fn of(pod: &'a CachedPod) -> Self {
        let Some((kind, name)) = pod.controller() else {
            return Self::default();
        };
        let mut o = Self::default();
        match kind {
            "ReplicaSet" => {
                o.replicaset = Some(name);
                o.deployment = deployment_of_replicaset(name);
            }
            "StatefulSet" => o.statefulset = Some(name),
            "DaemonSet" => o.daemonset = Some(name),
            "Job" => {
                o.job = Some(name);
                o.cronjob = cronjob_of_job(name);
            }
            _ => {}
        }
        o
    }

    fn attributes(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            (n::K8S_REPLICASET_NAME, self.replicaset),
            (n::K8S_DEPLOYMENT_NAME, self.deployment),
            (n::K8S_STATEFULSET_NAME, self.statefulset),
            (n::K8S_DAEMONSET_NAME, self.daemonset),
            (n::K8S_JOB_NAME, self.job),
            (n::K8S_CRONJOB_NAME, self.cronjob),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }

    /// The semantic conventions' owner order for `service.name`.
    fn service_name(&self) -> Option<&'a str> {
        self.deployment
            .or(self.replicaset)
            .or(self.statefulset)
            .or(self.daemonset)
            .or(self.cronjob)
            .or(self.job)
    }
}

/// `web-7d9f8c6b5` → `web`: the Deployment controller names ReplicaSets
/// `<deployment>-<pod-template-hash>`, the hash written with the API machinery's safe alphabet
/// (`bcdfghjklmnpqrstvwxz2456789`, no vowels).
pub fn deployment_of_replicaset(rs: &str) -> Option<&str> {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let (base, hash) = rs.rsplit_once('-')?;
    (!base.is_empty()
        && !hash.is_empty()
        && hash.len() <= 10
        && hash.bytes().all(|b| SAFE.contains(&b)))
    .then_some(base)
}

/// `backup-29000160` → `backup`: the CronJob controller names Jobs `<cronjob>-<scheduled time
/// in minutes since the epoch>`.
pub fn cronjob_of_job(job: &str) -> Option<&str> {
    let (base, t) = job.rsplit_once('-')?;
    (!base.is_empty() && t.len() >= 8 && t.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `1.2`). Image ids
/// (`sha256:…`) give nothing.
pub fn split_image(image: &str) -> (Option<&str>, Option<&str>) {
    if image.is_empty() || image.starts_with("sha256:") {
        return (None, None);
    }
    let image = image.split_once('@').map_or(image, |(i, _)| i);
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(c) => {
            let (name, tag) = (&image[..slash + c], &image[slash + c + 1..]);
            (Some(name), Some(tag).filter(|t| !t.is_empty()))
        }
        None => (Some(image), None),
    }
}

/// Reduces a pod's metadata to what [`pod_identity`] and the cache use, in place (the watcher
/// calls it on every object before the reflector stores it): name, namespace, uid and
/// resourceVersion stay in `metadata`; the three `app.kubernetes.io` labels, the
/// `resource.opentelemetry.io/` annotations and the controlling owner's kind and name move to
/// [`CachedPod`]'s own compact fields. Everything else (managedFields, other labels and
/// annotations, finalizers, timestamps, …) is dropped; [`CachedPod`] never holds the spec or
/// the rest of the status. Idempotent.
pub fn strip(pod: &mut CachedPod) {
    let m = std::mem::take(&mut pod.metadata);
    let owner = pod
        .controller()
        .map(|(k, n)| (k.to_string(), n.to_string()));
    let owner = owner.or_else(|| {
        let refs = m.owner_references.as_deref()?;
        let o = refs
            .iter()
            .find(|o| o.controller == Some(true))
            .or(refs.first())?;
        Some((o.kind.clone(), o.name.clone()))
    });
    let keep_label = |k: &String| {
        [
            n::LABEL_APP_INSTANCE,
            n::LABEL_APP_NAME,
            n::LABEL_APP_VERSION,
        ]
        .contains(&k.as_str())
    };
    pod.labels.extend(
        m.labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| keep_label(k)),
    );
    pod.annotations.extend(
        m.annotations
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(n::ANNOTATION_RESOURCE_PREFIX)),
    );
    pod.labels.shrink_to_fit();
    pod.annotations.shrink_to_fit();
    pod.owner = owner;
    pod.metadata = ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        ..Default::default()
    };
    if let Some(st) = &mut pod.status {
        for v in [
            &mut st.container_statuses,
            &mut st.init_container_statuses,
            &mut st.ephemeral_container_statuses,
        ] {
            v.shrink_to_fit();
        }
    }
}

/// A pod as the cache holds it: `pod` read as [`CachedPod`] (what deserializing the API's JSON
/// gives) and stripped.
pub fn cache_form(pod: &k8s_openapi::api::core::v1::Pod) -> CachedPod {
    let json = serde_json::to_value(pod).unwrap_or_default();
    let mut c: CachedPod = serde_json::from_value(json).unwrap_or_default();
    strip(&mut c);
    c
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
