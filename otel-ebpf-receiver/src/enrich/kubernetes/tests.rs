//! Lookups against a filled store and in sidecar mode; start-up decisions.

use super::*;
use crate::enrich::kubernetes::test_pods::{PodSpec, pod};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UID: &str = "1b2c3d4e-aaaa-4bbb-8ccc-0123456789ab";

fn watched(pods: &[CachedPod]) -> Kubernetes {
    let (k, mut w) = Kubernetes::test_watch("node-1");
    for p in pods {
        k.test_apply(&mut w, p);
    }
    // Readers keep the store's data after the writer is gone.
    drop(w);
    k
}

fn ids(c: Option<&str>, u: Option<&str>) -> CgroupIds {
    CgroupIds {
        container_id: c.map(str::to_string),
        pod_uid: u.map(str::to_string),
    }
}

fn found(l: Lookup) -> PodIdentity {
    match l {
        Lookup::Found(p) => *p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lookup_by_container_then_pod_uid() {
    let other = pod(&PodSpec {
        name: "db-0",
        uid: "00000000-1111-4222-8333-444444444444",
        owner: Some(("StatefulSet", "db")),
        containers: vec![("db", "containerd://ffff", "postgres:17")],
        ..Default::default()
    });
    let k = watched(&[other, pod(&PodSpec::default())]);
    assert_eq!(k.len(), 2);
    let p = found(k.lookup(&ids(Some(ID), Some(UID))));
    assert_eq!(p.service_name, "web");
    assert!(
        p.attributes
            .iter()
            .any(|(a, v)| a == "k8s.container.name" && v == "web")
    );
    // Pod UID only (container not reported yet): the pod without container attributes.
    let p = found(k.lookup(&ids(Some(&"e".repeat(64)), Some(UID))));
    assert_eq!(p.service_instance_id, None);
    assert_eq!(p.service_name, "web");
    assert_eq!(k.lookup(&ids(None, None)), Lookup::NotInPod);
    assert_eq!(k.lookup(&ids(Some(&"e".repeat(64)), None)), Lookup::Missing);
    assert_eq!(k.stats().pod_misses.load(Ordering::Relaxed), 1);
}

#[test]
fn sidecar_matches_only_its_own_pod() {
    let env = |k: &str| {
        [
            ("K8S_POD_NAME", "cart-0"),
            ("K8S_NAMESPACE_NAME", "shop"),
            ("K8S_POD_UID", UID),
        ]
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v.to_string())
    };
    let own = sidecar::own_pod(&env, std::path::Path::new("/nonexistent")).unwrap();
    let k = Kubernetes {
        source: Source::Own(Arc::new(own)),
        node: "n".into(),
        stats: Arc::default(),
    };
    let p = found(k.lookup(&ids(Some(ID), Some(UID))));
    assert_eq!(
        (p.service_name.as_str(), p.service_namespace.as_str()),
        ("cart-0", "shop")
    );
    let other_uid = "00000000-1111-4222-8333-444444444444";
    assert_eq!(k.lookup(&ids(Some(ID), Some(other_uid))), Lookup::NotInPod);
    assert_eq!(k.lookup(&ids(None, None)), Lookup::NotInPod);
}

#[test]
fn auto_and_node_name() {
    let none = |_: &str| None;
    assert!(!auto_enabled(&none));
    let kc = |k: &str| (k == "KUBECONFIG").then(|| "/k".to_string());
    assert!(auto_enabled(&kc));
    let empty = |_: &str| Some(String::new());
    assert!(!auto_enabled(&empty));
    let node = |k: &str| (k == "K8S_NODE_NAME").then(|| "n1".to_string());
    assert_eq!(node_name(&node, "host"), "n1");
    assert_eq!(node_name(&none, "host"), "host");
}

#[tokio::test]
async fn start_decisions() {
    let none = |_: &str| None;
    let off = KubernetesConfig {
        enabled: KubernetesEnabled::False,
    };
    let kc = |k: &str| (k == "KUBECONFIG").then(|| "/k".to_string());
    assert!(start(&off, &kc, "h").await.unwrap().is_none());
    let auto = KubernetesConfig::default();
    assert!(start(&auto, &none, "h").await.unwrap().is_none());
    // `true` where kube's own discovery finds nothing (this machine and CI: no KUBECONFIG,
    // no ~/.kube/config, not in a pod) is a start-up error naming the key.
    let home_cfg = std::env::var_os("HOME")
        .map(|h| std::path::Path::new(&h).join(".kube/config").exists())
        .unwrap_or(false);
    let real_cluster = ["KUBECONFIG", "KUBERNETES_SERVICE_HOST"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    assert!(
        !home_cfg && !real_cluster,
        "test needs a machine without Kubernetes config"
    );
    let on = KubernetesConfig {
        enabled: KubernetesEnabled::True,
    };
    let err = start(&on, &none, "h").await.unwrap_err().to_string();
    assert!(err.contains("receiver.kubernetes.enabled is true"), "{err}");
}
