//! Unit tests of the pod → identity rules.

use super::*;
use crate::enrich::kubernetes::cached::CachedContainer;
use crate::enrich::kubernetes::test_pods::{PodSpec, full_pod, pod};
use serde_json::json;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn attr<'a>(id: &'a PodIdentity, k: &str) -> Option<&'a str> {
    id.attributes
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
}

#[test]
fn deployment_pod_gets_every_attribute() {
    let id = pod_identity(&pod(&PodSpec::default()), Some(ID), "node-1");
    let want = [
        (n::K8S_NAMESPACE_NAME, "shop"),
        (n::K8S_POD_NAME, "web-7d9f8c6b5-x2x4q"),
        (n::K8S_POD_UID, "1b2c3d4e-aaaa-4bbb-8ccc-0123456789ab"),
        (n::K8S_NODE_NAME, "node-1"),
        (n::K8S_REPLICASET_NAME, "web-7d9f8c6b5"),
        (n::K8S_DEPLOYMENT_NAME, "web"),
        (n::K8S_CONTAINER_NAME, "web"),
        (n::CONTAINER_IMAGE_NAME, "docker.io/library/nginx"),
    ];
    let got: Vec<(&str, &str)> = id
        .attributes
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_str()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(id.image_tag.as_deref(), Some("1.27.3"));
    assert_eq!(id.service_name, "web");
    assert_eq!(id.service_namespace, "shop");
    assert_eq!(id.service_version.as_deref(), Some("1.27.3"));
    assert_eq!(
        id.service_instance_id.as_deref(),
        Some("shop.web-7d9f8c6b5-x2x4q.web")
    );
}

#[test]
fn service_name_follows_the_conventions_order() {
    let anns = json!({"resource.opentelemetry.io/service.name": "from-annotation"});
    let both = json!({"app.kubernetes.io/instance": "inst", "app.kubernetes.io/name": "nm"});
    let name_only = json!({"app.kubernetes.io/name": "nm"});
    let cases: Vec<(PodSpec, &str)> = vec![
        (
            PodSpec {
                annotations: anns,
                labels: both.clone(),
                ..Default::default()
            },
            "from-annotation",
        ),
        (
            PodSpec {
                labels: both,
                ..Default::default()
            },
            "inst",
        ),
        (
            PodSpec {
                labels: name_only,
                ..Default::default()
            },
            "nm",
        ),
        (PodSpec::default(), "web"),
        // A ReplicaSet whose suffix is not a pod-template hash: the replicaset name.
        (
            PodSpec {
                owner: Some(("ReplicaSet", "frontend")),
                ..Default::default()
            },
            "frontend",
        ),
        (
            PodSpec {
                owner: Some(("StatefulSet", "db")),
                name: "db-0",
                ..Default::default()
            },
            "db",
        ),
        (
            PodSpec {
                owner: Some(("DaemonSet", "agent")),
                ..Default::default()
            },
            "agent",
        ),
        (
            PodSpec {
                owner: Some(("Job", "backup-29000160")),
                ..Default::default()
            },
            "backup",
        ),
        (
            PodSpec {
                owner: Some(("Job", "migrate")),
                ..Default::default()
            },
            "migrate",
        ),
        (
            PodSpec {
                owner: None,
                name: "debug",
                ..Default::default()
            },
            "debug",
        ),
        (
            PodSpec {
                owner: Some(("Node", "node-1")),
                name: "static-web-node-1",
                ..Default::default()
            },
            "static-web-node-1",
        ),
    ];
    for (spec, want) in cases {
        let id = pod_identity(&pod(&spec), Some(ID), "");
        assert_eq!(id.service_name, want, "{spec:?}");
    }
}

#[test]
fn owner_attributes() {
    let id = pod_identity(
        &pod(&PodSpec {
            owner: Some(("Job", "backup-29000160")),
            ..Default::default()
        }),
        Some(ID),
        "",
    );
    assert_eq!(attr(&id, n::K8S_JOB_NAME), Some("backup-29000160"));
    assert_eq!(attr(&id, n::K8S_CRONJOB_NAME), Some("backup"));
    assert_eq!(attr(&id, n::K8S_DEPLOYMENT_NAME), None);
    assert_eq!(attr(&id, n::K8S_NODE_NAME), None);
    let id = pod_identity(
        &pod(&PodSpec {
            owner: Some(("StatefulSet", "db")),
            ..Default::default()
        }),
        Some(ID),
        "n",
    );
    assert_eq!(attr(&id, n::K8S_STATEFULSET_NAME), Some("db"));
    assert_eq!(attr(&id, n::K8S_REPLICASET_NAME), None);
}

#[test]
fn suffix_rules() {
    assert_eq!(deployment_of_replicaset("web-7d9f8c6b5"), Some("web"));
    assert_eq!(deployment_of_replicaset("my-api-5b4f7c9d8"), Some("my-api"));
    assert_eq!(deployment_of_replicaset("frontend"), None);
    assert_eq!(deployment_of_replicaset("web-frontend"), None);
    assert_eq!(deployment_of_replicaset("-7d9f8c6b5"), None);
    assert_eq!(deployment_of_replicaset("web-"), None);
    assert_eq!(cronjob_of_job("backup-29000160"), Some("backup"));
    assert_eq!(cronjob_of_job("migrate-1"), None);
    assert_eq!(cronjob_of_job("migrate"), None);
}

#[test]
fn image_splitting() {
    let cases = [
        ("nginx", (Some("nginx"), None)),
        ("nginx:1.27", (Some("nginx"), Some("1.27"))),
        (
            "registry:5000/team/app:1.2",
            (Some("registry:5000/team/app"), Some("1.2")),
        ),
        (
            "registry:5000/team/app",
            (Some("registry:5000/team/app"), None),
        ),
        (
            "ghcr.io/a/b:v1@sha256:abcd",
            (Some("ghcr.io/a/b"), Some("v1")),
        ),
        ("ghcr.io/a/b@sha256:abcd", (Some("ghcr.io/a/b"), None)),
        ("sha256:abcd", (None, None)),
        ("", (None, None)),
    ];
    for (img, want) in cases {
        assert_eq!(split_image(img), want, "{img}");
    }
}

#[test]
fn annotations_and_version_sources() {
    let spec = PodSpec {
        annotations: json!({
            "resource.opentelemetry.io/service.namespace": "payments",
            "resource.opentelemetry.io/service.instance.id": "inst-1",
            "resource.opentelemetry.io/deployment.environment.name": "prod",
            "resource.opentelemetry.io/k8s.pod.name": "ignored-ours-wins",
            "resource.opentelemetry.io/": "empty-key",
            "other.io/x": "not-copied"
        }),
        labels: json!({"app.kubernetes.io/version": "2.4.0"}),
        ..Default::default()
    };
    let id = pod_identity(&pod(&spec), Some(ID), "");
    assert_eq!(id.service_namespace, "payments");
    assert_eq!(id.service_instance_id.as_deref(), Some("inst-1"));
    assert_eq!(id.service_version.as_deref(), Some("2.4.0"));
    assert_eq!(attr(&id, "deployment.environment.name"), Some("prod"));
    assert_eq!(attr(&id, n::K8S_POD_NAME), Some("web-7d9f8c6b5-x2x4q"));
    assert_eq!(attr(&id, "other.io/x"), None);
    assert!(id.attributes.iter().all(|(k, _)| !k.is_empty()));
    let spec = PodSpec {
        annotations: json!({"resource.opentelemetry.io/service.version": "9"}),
        ..Default::default()
    };
    assert_eq!(
        pod_identity(&pod(&spec), Some(ID), "")
            .service_version
            .as_deref(),
        Some("9")
    );
}

#[test]
fn unknown_container_gives_the_pod_only() {
    let other = "f".repeat(64);
    let id = pod_identity(&pod(&PodSpec::default()), Some(&other), "");
    assert_eq!(attr(&id, n::K8S_CONTAINER_NAME), None);
    assert_eq!(attr(&id, n::CONTAINER_IMAGE_NAME), None);
    assert_eq!(id.service_instance_id, None);
    assert_eq!(id.service_name, "web");
    let id = pod_identity(&pod(&PodSpec::default()), None, "");
    assert_eq!(attr(&id, n::K8S_POD_NAME), Some("web-7d9f8c6b5-x2x4q"));
}

#[test]
fn container_matching_uses_every_status_list() {
    let mut p = pod(&PodSpec::default());
    let st = p.status.as_mut().unwrap();
    st.init_container_statuses = vec![CachedContainer {
        name: "init".into(),
        container_id: Some(format!("cri-o://{}", "a".repeat(64))),
        image: "busybox".into(),
    }];
    assert_eq!(
        container_status(&p, &"A".repeat(64)).map(|s| s.name.as_str()),
        Some("init")
    );
    assert_eq!(
        container_status(&p, ID).map(|s| s.name.as_str()),
        Some("web")
    );
    assert!(container_status(&p, "").is_none());
}

#[test]
fn strip_keeps_exactly_what_identity_uses() {
    let spec = PodSpec {
        labels: json!({"app.kubernetes.io/name": "nm", "tier": "x"}),
        annotations: json!({"resource.opentelemetry.io/a.b": "c", "big": "x".repeat(1000)}),
        ..Default::default()
    };
    let read = pod(&spec);
    assert!(read.metadata.managed_fields.is_some());
    let mut s = read.clone();
    strip(&mut s);
    assert_eq!(
        pod_identity(&s, Some(ID), "n"),
        pod_identity(&read, Some(ID), "n")
    );
    assert!(s.metadata.managed_fields.is_none() && s.metadata.creation_timestamp.is_none());
    assert_eq!(s.labels, [("app.kubernetes.io/name".into(), "nm".into())]);
    assert_eq!(s.annotations.len(), 1);
    assert_eq!(
        (s.metadata.labels.as_ref(), s.metadata.annotations.as_ref()),
        (None, None)
    );
    assert_eq!(s.metadata.owner_references, None);
    assert_eq!(s.owner, Some(("ReplicaSet".into(), "web-7d9f8c6b5".into())));
    assert_eq!(s.metadata.resource_version.as_deref(), Some("1000"));
    // Idempotent.
    let mut again = s.clone();
    strip(&mut again);
    assert_eq!(again, s);
    // The same as going through k8s-openapi's Pod.
    assert_eq!(cache_form(&full_pod(&spec)), s);
}
