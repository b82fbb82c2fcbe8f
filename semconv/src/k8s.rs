//! Kubernetes and workload-identity resource attributes (OTel semantic conventions: `k8s.*`,
//! `container.image.*`, `service.*`), the pod labels and annotation prefix they are read from,
//! and the receiver's own Kubernetes counters.

/// `k8s.namespace.name` — string; the pod's namespace.
pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";
/// `k8s.pod.name` — string.
pub const K8S_POD_NAME: &str = "k8s.pod.name";
/// `k8s.pod.uid` — string; `metadata.uid`.
pub const K8S_POD_UID: &str = "k8s.pod.uid";
/// `k8s.container.name` — string; the container the process runs in (from
/// `status.containerStatuses[].name`, matched by container id).
pub const K8S_CONTAINER_NAME: &str = "k8s.container.name";
/// `k8s.node.name` — string; the node the receiver watches (`K8S_NODE_NAME`, else host name).
pub const K8S_NODE_NAME: &str = "k8s.node.name";
/// `k8s.replicaset.name` — string; the pod's controlling ReplicaSet.
pub const K8S_REPLICASET_NAME: &str = "k8s.replicaset.name";
/// `k8s.deployment.name` — string; the ReplicaSet's name without its last `-<pod-template-hash>`.
pub const K8S_DEPLOYMENT_NAME: &str = "k8s.deployment.name";
/// `k8s.statefulset.name` — string; the pod's controlling StatefulSet.
pub const K8S_STATEFULSET_NAME: &str = "k8s.statefulset.name";
/// `k8s.daemonset.name` — string; the pod's controlling DaemonSet.
pub const K8S_DAEMONSET_NAME: &str = "k8s.daemonset.name";
/// `k8s.job.name` — string; the pod's controlling Job.
pub const K8S_JOB_NAME: &str = "k8s.job.name";
/// `k8s.cronjob.name` — string; the Job's name without its last `-<schedule time>` suffix, when
/// the Job's name has the CronJob controller's numeric suffix.
pub const K8S_CRONJOB_NAME: &str = "k8s.cronjob.name";
/// `container.image.name` — string; the container's image without tag or digest
/// (`docker.io/library/nginx`), from `status.containerStatuses[].image`.
pub const CONTAINER_IMAGE_NAME: &str = "container.image.name";
/// `container.image.tags` — string[]; the image's tag. Not emitted today: the receiver's
/// attribute model has no arrays (the tag feeds `service.version` instead). Declared so the
/// name is pinned when it is.
pub const CONTAINER_IMAGE_TAGS: &str = "container.image.tags";
/// `service.namespace` — string; annotation `resource.opentelemetry.io/service.namespace`, else
/// the pod's namespace.
pub const SERVICE_NAMESPACE: &str = "service.namespace";
/// `service.version` — string; annotation `resource.opentelemetry.io/service.version`, else
/// label `app.kubernetes.io/version`, else the image tag.
pub const SERVICE_VERSION: &str = "service.version";
/// `service.instance.id` — string; `<namespace>.<pod>.<container>` (annotation wins).
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// Pod annotation prefix: `resource.opentelemetry.io/<key>` becomes resource attribute `<key>`.
pub const ANNOTATION_RESOURCE_PREFIX: &str = "resource.opentelemetry.io/";
/// Pod label `app.kubernetes.io/instance` (a `service.name` source).
pub const LABEL_APP_INSTANCE: &str = "app.kubernetes.io/instance";
/// Pod label `app.kubernetes.io/name` (a `service.name` source).
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
/// Pod label `app.kubernetes.io/version` (a `service.version` source).
pub const LABEL_APP_VERSION: &str = "app.kubernetes.io/version";

/// Every resource attribute name above (for tests and docs).
pub const ALL: [&str; 16] = [
    K8S_NAMESPACE_NAME,
    K8S_POD_NAME,
    K8S_POD_UID,
    K8S_CONTAINER_NAME,
    K8S_NODE_NAME,
    K8S_REPLICASET_NAME,
    K8S_DEPLOYMENT_NAME,
    K8S_STATEFULSET_NAME,
    K8S_DAEMONSET_NAME,
    K8S_JOB_NAME,
    K8S_CRONJOB_NAME,
    CONTAINER_IMAGE_NAME,
    CONTAINER_IMAGE_TAGS,
    SERVICE_NAMESPACE,
    SERVICE_VERSION,
    SERVICE_INSTANCE_ID,
];

/// Pod watch failures (API unreachable, watch errors, 410 Gone relists), each retry counted
/// (errors). Prometheus counter.
pub const SELF_WATCH_ERRORS_TOTAL: &str = "otel_ebpf_k8s_watch_errors_total";
/// Processes in a container whose pod was not (yet) in the cache when their resource was built
/// (lookups). Prometheus counter.
pub const SELF_POD_MISSES_TOTAL: &str = "otel_ebpf_k8s_pod_lookup_misses_total";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otel::attribute as up;

    #[test]
    fn names_match_upstream() {
        let pairs = [
            (K8S_NAMESPACE_NAME, up::K8S_NAMESPACE_NAME),
            (K8S_POD_NAME, up::K8S_POD_NAME),
            (K8S_POD_UID, up::K8S_POD_UID),
            (K8S_CONTAINER_NAME, up::K8S_CONTAINER_NAME),
            (K8S_NODE_NAME, up::K8S_NODE_NAME),
            (K8S_REPLICASET_NAME, up::K8S_REPLICASET_NAME),
            (K8S_DEPLOYMENT_NAME, up::K8S_DEPLOYMENT_NAME),
            (K8S_STATEFULSET_NAME, up::K8S_STATEFULSET_NAME),
            (K8S_DAEMONSET_NAME, up::K8S_DAEMONSET_NAME),
            (K8S_JOB_NAME, up::K8S_JOB_NAME),
            (K8S_CRONJOB_NAME, up::K8S_CRONJOB_NAME),
            (CONTAINER_IMAGE_NAME, up::CONTAINER_IMAGE_NAME),
            (CONTAINER_IMAGE_TAGS, up::CONTAINER_IMAGE_TAGS),
            (SERVICE_NAMESPACE, up::SERVICE_NAMESPACE),
            (SERVICE_VERSION, up::SERVICE_VERSION),
            (SERVICE_INSTANCE_ID, up::SERVICE_INSTANCE_ID),
        ];
        assert_eq!(pairs.len(), ALL.len());
        for ((ours, theirs), listed) in pairs.into_iter().zip(ALL) {
            assert_eq!(ours, theirs);
            assert_eq!(ours, listed);
        }
    }
}
