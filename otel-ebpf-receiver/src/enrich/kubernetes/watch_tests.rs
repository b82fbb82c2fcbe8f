//! The watcher against an in-test API server speaking the list/watch protocol with real-shaped
//! Pod JSON: initial list, ADDED/MODIFIED/DELETED, a watch that ends and resumes, 410 Gone →
//! relist, and the server down at start.

use super::*;
use crate::enrich::cgroup::CgroupIds;
use crate::enrich::kubernetes::test_pods::{PodSpec, pod_json};
use crate::enrich::kubernetes::{Kubernetes, Lookup, Source};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

/// What the fake API server holds.
#[derive(Default)]
struct Api {
    /// name → pod JSON.
    pods: BTreeMap<String, Value>,
    rv: u64,
    /// Sender of the open watch, if any (None ends the watch stream).
    watch: Option<mpsc::UnboundedSender<Value>>,
    /// `list` or `watch rv=N` per request, in order.
    log: Vec<String>,
}

struct Fake {
    api: Arc<Mutex<Api>>,
    addr: std::net::SocketAddr,
}

impl Fake {
    /// Serves on `addr` (port 0: any).
    async fn start(addr: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = Arc::new(Mutex::new(Api {
            rv: 100,
            ..Default::default()
        }));
        let shared = Arc::clone(&api);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let api = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let api = Arc::clone(&api);
                        async move { Ok::<_, Infallible>(handle(&api, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        (Self { api, addr }, task)
    }

    fn client(addr: std::net::SocketAddr) -> kube::Client {
        let cfg = kube::Config::new(format!("http://{addr}").parse().unwrap());
        kube::Client::try_from(cfg).unwrap()
    }

    /// Stores a pod and sends `kind` (ADDED, MODIFIED, DELETED) on the open watch.
    fn event(&self, kind: &str, spec: &PodSpec) {
        let mut api = self.api.lock().unwrap();
        api.rv += 1;
        let rv = api.rv.to_string();
        let mut p = pod_json(&PodSpec {
            resource_version: &rv,
            ..spec.clone()
        });
        if kind == "DELETED" {
            api.pods.remove(spec.name);
        } else {
            api.pods.insert(spec.name.to_string(), p.clone());
        }
        p["metadata"]["resourceVersion"] = json!(rv);
        if let Some(w) = &api.watch {
            let _ = w.send(json!({"type": kind, "object": p}));
        }
    }

    /// Changes the pods without telling the open watch (seen only by a relist).
    fn put_silently(&self, spec: &PodSpec) {
        let mut api = self.api.lock().unwrap();
        api.rv += 1;
        api.pods.insert(spec.name.to_string(), pod_json(spec));
    }

    fn end_watch(&self) {
        self.api.lock().unwrap().watch = None;
    }

    fn gone(&self) {
        let mut api = self.api.lock().unwrap();
        if let Some(w) = api.watch.take() {
            let _ = w.send(json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: 101 (150)", "reason": "Expired", "code": 410
            }}));
        }
    }

    fn log(&self) -> Vec<String> {
        self.api.lock().unwrap().log.clone()
    }

    fn has_watch(&self) -> bool {
        self.api.lock().unwrap().watch.is_some()
    }
}

fn handle(api: &Mutex<Api>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let q = req.uri().query().unwrap_or_default().to_string();
    let mut a = api.lock().unwrap();
    if req.uri().path() != "/api/v1/pods" || !q.contains("fieldSelector=spec.nodeName%3Dnode-1") {
        let body = Full::new(Bytes::from("not found")).boxed();
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(body)
            .unwrap();
    }
    if q.contains("watch=true") {
        let rv = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .unwrap_or("")
            .to_string();
        a.log.push(format!("watch rv={rv}"));
        let (tx, rx) = mpsc::unbounded_channel::<Value>();
        a.watch = Some(tx);
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let v = rx.recv().await?;
            let line = format!("{v}\n");
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), rx))
        });
        return Response::builder()
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .unwrap();
    }
    a.log.push("list".into());
    let list = json!({
        "kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": a.rv.to_string()},
        "items": a.pods.values().cloned().collect::<Vec<_>>()
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(list.to_string())).boxed())
        .unwrap()
}

/// A short constant retry schedule.
struct Fast;
impl Iterator for Fast {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
}
impl Backoff for Fast {
    fn reset(&mut self) {}
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cid(n: u8) -> String {
    format!("{:064x}", n)
}

fn spec<'a>(name: &'a str, uid: &'a str, id: &'a str) -> PodSpec<'a> {
    PodSpec {
        name,
        uid,
        containers: vec![("app", id, "ghcr.io/acme/app:1.0")],
        ..Default::default()
    }
}

fn service(k: &Kubernetes, id: &str) -> Option<String> {
    let ids = CgroupIds {
        container_id: Some(id.to_string()),
        pod_uid: None,
    };
    match k.lookup(&ids) {
        Lookup::Found(p) => Some(p.service_name.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn list_then_added_modified_deleted_resume_and_gone() {
    let (fake, _server) = Fake::start("127.0.0.1:0").await;
    let (a, b) = (cid(1), cid(2));
    let (ida, idb) = (format!("containerd://{a}"), format!("cri-o://{b}"));
    fake.put_silently(&spec("a-0", "00000000-0000-4000-8000-00000000000a", &ida));
    let stats = Arc::new(KubeStats::default());
    let (store, task) = spawn_with(Fake::client(fake.addr), "node-1", Arc::clone(&stats), Fast);
    let k = Kubernetes {
        source: Source::Watch(store.clone()),
        node: "node-1".into(),
        stats: Arc::clone(&stats),
    };
    until("initial list", || stats.synced() && k.len() == 1).await;
    until("watch open", || fake.has_watch()).await;
    assert_eq!(service(&k, &a).as_deref(), Some("web"));
    // Stored stripped: no managedFields, no other labels.
    let cached = store.state();
    assert!(cached[0].metadata.managed_fields.is_none());
    assert_eq!(cached[0].metadata.labels, None);
    assert!(cached[0].labels.is_empty() && cached[0].owner.is_some());

    // ADDED.
    let g = k.generation();
    fake.event(
        "ADDED",
        &spec("b-0", "00000000-0000-4000-8000-00000000000b", &idb),
    );
    until("ADDED applied", || k.len() == 2).await;
    assert!(k.generation() > g);
    // MODIFIED: a new annotation renames the service.
    let mut renamed = spec("b-0", "00000000-0000-4000-8000-00000000000b", &idb);
    renamed.annotations = json!({"resource.opentelemetry.io/service.name": "billing"});
    fake.event("MODIFIED", &renamed);
    until("MODIFIED applied", || {
        service(&k, &b).as_deref() == Some("billing")
    })
    .await;
    // DELETED.
    fake.event(
        "DELETED",
        &spec("a-0", "00000000-0000-4000-8000-00000000000a", &ida),
    );
    until("DELETED applied", || service(&k, &a).is_none()).await;

    // The watch ends (server timeout): resumed from the last resourceVersion, no relist.
    let lists = fake.log().iter().filter(|l| *l == "list").count();
    fake.end_watch();
    until("watch resumed", || fake.has_watch()).await;
    let log = fake.log();
    assert_eq!(
        log.iter().filter(|l| *l == "list").count(),
        lists,
        "{log:?}"
    );
    let last_rv = fake.api.lock().unwrap().rv;
    assert_eq!(
        log.last().unwrap(),
        &format!("watch rv={last_rv}"),
        "{log:?}"
    );
    fake.event(
        "ADDED",
        &spec("c-0", "00000000-0000-4000-8000-00000000000c", &ida),
    );
    until("event on the resumed watch", || service(&k, &a).is_some()).await;

    // 410 Gone: the watcher relists and sees what changed meanwhile.
    fake.put_silently(&spec(
        "d-0",
        "00000000-0000-4000-8000-00000000000d",
        &format!("containerd://{}", cid(4)),
    ));
    fake.gone();
    until("relist after 410", || service(&k, &cid(4)).is_some()).await;
    assert_eq!(k.len(), 3);
    assert_eq!(
        fake.log().iter().filter(|l| *l == "list").count(),
        lists + 1
    );
    assert!(stats.watch_errors.load(Ordering::Relaxed) >= 1);
    task.abort();
}

#[tokio::test]
async fn server_down_at_start_then_up() {
    // A free port with nothing listening yet.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let stats = Arc::new(KubeStats::default());
    let (store, task) = spawn_with(Fake::client(addr), "node-1", Arc::clone(&stats), Fast);
    until("errors counted while down", || {
        stats.watch_errors.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert!(!stats.synced());
    assert_eq!(store.len(), 0);
    let (fake, _server) = Fake::start(&addr.to_string()).await;
    fake.put_silently(&spec(
        "a-0",
        "00000000-0000-4000-8000-00000000000a",
        "containerd://x",
    ));
    until("listed once the server is up", || {
        store.len() == 1 && stats.synced()
    })
    .await;
    task.abort();
}
