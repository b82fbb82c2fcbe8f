//! Kubernetes workload identity end to end, as root: real python HTTP servers placed in real
//! cgroups named as kubelet + containerd (systemd driver, cgroup v2 hierarchy) and kubelet +
//! CRI-O (cgroupfs driver, cgroup v1 `pids` hierarchy) name them, a fake API server serving
//! their pods through a KUBECONFIG, and the receiver's spans checked for `k8s.*` and
//! `service.name` — and for their absence on a host process. Exact span counts.
//!
//! The cgroups are created under the host's cgroup mounts (`/sys/fs/cgroup/unified` on this
//! hybrid host, or `/sys/fs/cgroup` when it is pure cgroup v2) and removed at the end.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use otel_ebpf_integration::{OtlpSink, Receiver, Span, free_port, serial, terminate};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const NODE: &str = "it-node";
const CID_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const CID_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const UID_A: &str = "0a0a0a0a-1111-4222-8333-444444444444";
const UID_B: &str = "0b0b0b0b-1111-4222-8333-444444444444";

/// A pod as the API server returns it (trimmed of nothing the receiver must ignore).
fn pod(
    name: &str,
    uid: &str,
    owner: (&str, &str),
    container: &str,
    id: &str,
    image: &str,
) -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": name, "namespace": "shop", "uid": uid, "resourceVersion": "500",
            "creationTimestamp": "2026-12-01T09:00:00Z",
            "labels": {"pod-template-hash": "7d9f8c6b5"},
            "annotations": {"resource.opentelemetry.io/deployment.environment.name": "it"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1,
                "uid": "99999999-8888-4777-8666-555555555555", "controller": true}],
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]
        },
        "spec": {"nodeName": NODE, "containers": [{"name": container, "image": image}]},
        "status": {
            "phase": "Running", "podIP": "10.244.0.7",
            "containerStatuses": [{"name": container, "containerID": id, "image": image,
                "imageID": "sha256:00", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-12-01T09:00:01Z"}}}]
        }
    })
}

/// A fake API server on 127.0.0.1: the pod list for this node, and a watch that stays open.
fn api_server(pods: Vec<Value>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let list = json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "500"}, "items": pods})
    .to_string();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let deadline = tokio::time::sleep(Duration::from_secs(120));
            tokio::pin!(deadline);
            loop {
                let sock = tokio::select! {
                    s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => return },
                    _ = &mut deadline => return,
                };
                let list = list.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let list = list.clone();
                        async move {
                            let q = req.uri().query().unwrap_or_default();
                            let ok = req.uri().path() == "/api/v1/pods"
                                && q.contains(&format!("fieldSelector=spec.nodeName%3D{NODE}"));
                            let body: BoxBody<Bytes, Infallible> = if !ok {
                                Full::new(Bytes::from("{}")).boxed()
                            } else if q.contains("watch=true") {
                                // Open, silent watch (the pods do not change in this test).
                                StreamBody::new(tokio_stream::pending::<
                                    Result<Frame<Bytes>, Infallible>,
                                >())
                                .boxed()
                            } else {
                                Full::new(Bytes::from(list)).boxed()
                            };
                            let status = if ok { 200 } else { 404 };
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(body)
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
    });
    (port, t)
}

/// A cgroup directory for the test; the directories it created (leaf first) are removed on
/// drop once empty. One left by an interrupted earlier run is reused, and removed too.
struct Cgroup {
    leaf: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// Creates `root/rel` (and its parents) and returns it.
    fn create(root: &Path, rel: &str) -> Self {
        let mut dirs = Vec::new();
        let mut p = root.to_path_buf();
        for part in rel.split('/') {
            p.push(part);
            if !p.exists() {
                std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
            }
            dirs.push(p.clone());
        }
        // Parents that existed before are shared (systemd's, the kubepods slices of an
        // interrupted run): only the test's own levels below `root` are removed, and a
        // removal that fails because a directory is still in use is harmless.
        dirs.reverse();
        Self {
            leaf: p.clone(),
            dirs,
        }
    }

    fn enter(&self, pid: u32) {
        let procs = self.leaf.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Empty once the processes are gone (they are reaped before this runs).
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The cgroup v2 mount: `/sys/fs/cgroup/unified` on hybrid hosts, else `/sys/fs/cgroup`.
fn v2_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid.into()
    } else {
        "/sys/fs/cgroup".into()
    }
}

fn python_server(port: u16, env: &[(&str, &str)]) -> Child {
    let mut c = Command::new("python3");
    c.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ])
    .current_dir(std::env::temp_dir())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("python3 -m http.server")
}

fn wait_listening(port: u16) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < WAIT, "port {port} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /nope HTTP/1.1\r\nHost: it\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(
        out.starts_with(b"HTTP/1.0 404"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

fn servers_on(port: u16) -> impl Fn(&Span) -> bool {
    move |s: &Span| s.is_server() && s.attr("server.port") == Some(&port.to_string())
}

#[test]
fn pod_processes_carry_workload_identity_host_process_none() {
    let _g = serial();
    let (api_port, _api) = api_server(vec![
        pod(
            "web-7d9f8c6b5-x2x4q",
            UID_A,
            ("ReplicaSet", "web-7d9f8c6b5"),
            "web",
            &format!("containerd://{CID_A}"),
            "docker.io/library/python:3.11",
        ),
        pod(
            "db-0",
            UID_B,
            ("StatefulSet", "db"),
            "db",
            &format!("cri-o://{CID_B}"),
            "quay.io/acme/db:17.2",
        ),
    ]);
    let dir = std::env::temp_dir().join(format!("oer-k8s-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: it\n  cluster:\n    server: http://127.0.0.1:{api_port}\n\
             users:\n- name: it\n  user: {{}}\ncontexts:\n- name: it\n  context: {{cluster: it, user: it}}\ncurrent-context: it\n"
        ),
    )
    .unwrap();

    // containerd + systemd cgroup driver, cgroup v2.
    let uid_a = UID_A.replace('-', "_");
    let cg_a = Cgroup::create(
        &v2_root(),
        &format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_a}.slice/cri-containerd-{CID_A}.scope"
        ),
    );
    // CRI-O + cgroupfs driver, cgroup v1 (pids hierarchy; the v2 tree on a pure v2 host).
    let v1_pids = Path::new("/sys/fs/cgroup/pids");
    let root_b = if v1_pids.join("cgroup.procs").exists() {
        v1_pids.to_path_buf()
    } else {
        v2_root()
    };
    let cg_b = Cgroup::create(
        &root_b,
        &format!("kubepods/burstable/pod{UID_B}/crio-{CID_B}"),
    );
    let (pa, pb, ph) = (free_port(), free_port(), free_port());
    let mut a = python_server(pa, &[]);
    cg_a.enter(a.id());
    // The process's own OTEL_SERVICE_NAME wins over the pod's.
    let mut b = python_server(pb, &[("OTEL_SERVICE_NAME", "db-from-env")]);
    cg_b.enter(b.id());
    let mut h = python_server(ph, &[]);
    for p in [pa, pb, ph] {
        wait_listening(p);
    }

    let sink = OtlpSink::start();
    let kc = kubeconfig.to_string_lossy().into_owned();
    let mut rx = Receiver::start(
        &format!(
            "  kubernetes:\n    enabled: true\n  filters:\n    include_ports: [{pa}, {pb}, {ph}]"
        ),
        Some(&sink.endpoint()),
        &[("KUBECONFIG", &kc), ("K8S_NODE_NAME", NODE)],
    );
    // Requests only once the pod list is in the cache (otherwise the first resource would be
    // rebuilt on a later event: still right, but this test wants every span identified).
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..3 {
        get(pa);
        get(pb);
        get(ph);
    }
    let spans_a = sink.wait_spans(3, WAIT, servers_on(pa));
    let spans_b = sink.wait_spans(3, WAIT, servers_on(pb));
    let spans_h = sink.wait_spans(3, WAIT, servers_on(ph));
    let metrics = rx.self_metrics();
    rx.stop();
    for c in [&mut a, &mut b, &mut h] {
        terminate(c);
    }
    drop((cg_a, cg_b));
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(
        (spans_a.len(), spans_b.len(), spans_h.len()),
        (3, 3, 3),
        "{spans_a:#?} {spans_b:#?} {spans_h:#?}"
    );
    let want_a = [
        ("service.name", "web"),
        ("service.namespace", "shop"),
        ("service.version", "3.11"),
        ("service.instance.id", "shop.web-7d9f8c6b5-x2x4q.web"),
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "web-7d9f8c6b5-x2x4q"),
        ("k8s.pod.uid", UID_A),
        ("k8s.container.name", "web"),
        ("k8s.node.name", NODE),
        ("k8s.replicaset.name", "web-7d9f8c6b5"),
        ("k8s.deployment.name", "web"),
        ("container.id", CID_A),
        ("container.image.name", "docker.io/library/python"),
        ("deployment.environment.name", "it"),
    ];
    for s in &spans_a {
        for (k, v) in want_a {
            assert_eq!(
                s.resource.get(k).map(String::as_str),
                Some(v),
                "{k}: {s:#?}"
            );
        }
        // A string array by the conventions; the attribute model has no arrays.
        assert_eq!(s.resource.get("container.image.tags"), None);
    }
    let want_b = [
        ("service.name", "db-from-env"),
        ("k8s.pod.name", "db-0"),
        ("k8s.statefulset.name", "db"),
        ("k8s.container.name", "db"),
        ("service.version", "17.2"),
        ("container.id", CID_B),
    ];
    for s in &spans_b {
        for (k, v) in want_b {
            assert_eq!(
                s.resource.get(k).map(String::as_str),
                Some(v),
                "{k}: {s:#?}"
            );
        }
    }
    for s in &spans_h {
        let k8s: Vec<&String> = s
            .resource
            .keys()
            .filter(|k| {
                k.starts_with("k8s.") || (k.starts_with("service.") && *k != "service.name")
            })
            .collect();
        assert!(k8s.is_empty(), "host process got {k8s:?}");
        assert!(s.resource["service.name"].starts_with("python3"), "{s:#?}");
    }
    assert!(
        metrics.contains("otel_ebpf_k8s_watch_errors_total 0"),
        "{metrics}"
    );
}
