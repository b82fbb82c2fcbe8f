//! Pod objects shaped as a real API server returns them (tests and the pod-cache measurement):
//! full metadata with managedFields, a spec, conditions and container statuses.

use serde_json::{Value, json};

/// Options of one test pod.
#[derive(Clone, Debug)]
pub struct PodSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub node: &'a str,
    pub resource_version: &'a str,
    /// (kind, name) of the controlling owner.
    pub owner: Option<(&'a str, &'a str)>,
    pub labels: Value,
    pub annotations: Value,
    /// (container name, container runtime id with scheme, image).
    pub containers: Vec<(&'a str, &'a str, &'a str)>,
}

impl Default for PodSpec<'_> {
    fn default() -> Self {
        Self {
            namespace: "shop",
            name: "web-7d9f8c6b5-x2x4q",
            uid: "1b2c3d4e-aaaa-4bbb-8ccc-0123456789ab",
            node: "node-1",
            resource_version: "1000",
            owner: Some(("ReplicaSet", "web-7d9f8c6b5")),
            labels: json!({"pod-template-hash": "7d9f8c6b5", "tier": "frontend"}),
            annotations: json!({"kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z"}),
            containers: vec![(
                "web",
                "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/nginx:1.27.3",
            )],
        }
    }
}

/// A Pod as `GET /api/v1/pods` returns it.
pub fn pod_json(p: &PodSpec) -> Value {
    let owners = p.owner.map(|(kind, name)| {
        json!([{
            "apiVersion": "apps/v1", "kind": kind, "name": name,
            "uid": "99999999-8888-4777-8666-555555555555",
            "controller": true, "blockOwnerDeletion": true
        }])
    });
    let spec_containers: Vec<Value> = p
        .containers
        .iter()
        .map(|(name, _, image)| {
            json!({
                "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
            })
        })
        .collect();
    let statuses: Vec<Value> = p
        .containers
        .iter()
        .map(|(name, id, image)| {
            json!({
                "name": name, "containerID": id, "image": image,
                "imageID": "docker.io/library/nginx@sha256:0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
                "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": "2026-12-01T09:00:02Z"}},
                "lastState": {}
            })
        })
        .collect();
    let mut meta = json!({
        "name": p.name, "generateName": "web-7d9f8c6b5-", "namespace": p.namespace, "uid": p.uid,
        "resourceVersion": p.resource_version, "creationTimestamp": "2026-12-01T09:00:00Z",
        "labels": p.labels, "annotations": p.annotations,
        "managedFields": [{
            "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
            "time": "2026-12-01T09:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:pod-template-hash": {}}},
                         "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
        }]
    });
    if let Some(o) = owners {
        meta["ownerReferences"] = o;
    }
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": meta,
        "spec": {
            "containers": spec_containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "nodeName": p.node, "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30, "enableServiceLinks": true, "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.11", "podIP": "10.244.1.23",
            "podIPs": [{"ip": "10.244.1.23"}], "qosClass": "Burstable", "startTime": "2026-12-01T09:00:00Z",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-01T09:00:00Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T09:00:03Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-01T09:00:03Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T09:00:00Z"}
            ],
            "containerStatuses": statuses
        }
    })
}

/// The same pod as `k8s_openapi` reads it (everything kept).
pub fn full_pod(p: &PodSpec) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(pod_json(p)).expect("test pod deserialises")
}

/// The same pod as the watcher reads it, before [`super::identity::strip`].
pub fn pod(p: &PodSpec) -> super::CachedPod {
    serde_json::from_value(pod_json(p)).expect("test pod deserialises")
}
