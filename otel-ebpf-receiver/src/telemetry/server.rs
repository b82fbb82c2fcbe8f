//! The health and metrics HTTP endpoints (hyper 1, HTTP/1.1).
//!
//! Stage: beside every stage, from start-up (before the probes attach, so the health check can
//! answer 503) to shutdown. Input: two optional listen addresses, [`SelfMetrics`] and the
//! readiness flag. Output: a [`ServerHandle`]; the servers run on the current tokio runtime.
//! Limits: 64 connections at once per endpoint (more wait to be accepted), 10 s to send the
//! request headers, request bodies are ignored; on shutdown, requests in flight get 1 s.

use super::{PROMETHEUS_CONTENT_TYPE, Readiness, SelfMetrics};
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Most connections served at once per endpoint.
const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time requests in flight get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Running telemetry servers. Dropping the handle stops them too (without waiting); call
/// [`ServerHandle::shutdown`] to stop them and wait until they have.
#[must_use = "dropping the handle stops the servers"]
#[derive(Debug)]
pub struct ServerHandle {
    health_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the health endpoint listens on (the real port when 0 was asked), or `None`
    /// when disabled.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// The address the metrics endpoint listens on (the real port when 0 was asked), or `None`
    /// when disabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting connections, lets requests in flight finish (at most 1 s), closes the
    /// listeners and returns once every server task has ended.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            // A panicked or aborted task has ended too.
            let _ = task.await;
        }
    }
}

/// Which endpoint a listener serves.
#[derive(Clone)]
enum Endpoint {
    Health(Arc<Readiness>, Arc<SelfMetrics>),
    Metrics(Arc<SelfMetrics>),
}

/// Binds the health and the metrics listeners (each `None` = disabled), both before returning,
/// and serves them on the current tokio runtime: health `GET /` → [`Readiness::answer`] (200
/// with the Collector health_check extension's body once `ready`, 503 before), and 503
/// `{"status":"Server not available","reason":"…"}` once [`SelfMetrics::failure`] is set (a
/// dead TLS attacher or export task);
/// metrics `GET /metrics` → [`SelfMetrics::render_prometheus`]. `HEAD` is answered too; other
/// paths get 404, other methods 405.
///
/// Errors: a listener cannot be bound; the message names the endpoint and the address (then
/// nothing is left listening).
pub async fn serve(
    health_address: Option<SocketAddr>,
    metrics_address: Option<SocketAddr>,
    metrics: Arc<SelfMetrics>,
    ready: Arc<Readiness>,
) -> anyhow::Result<ServerHandle> {
    let health = bind("health", health_address).await?;
    let metrics_listener = bind("metrics", metrics_address).await?;
    let (stop, _) = watch::channel(false);
    let mut handle = ServerHandle {
        health_addr: None,
        metrics_addr: None,
        stop,
        tasks: Vec::new(),
    };
    if let Some((listener, addr)) = health {
        handle.health_addr = Some(addr);
        log::info!("health check listening on http://{addr}/");
        let task = accept_loop(
            listener,
            Endpoint::Health(ready, metrics.clone()),
            handle.stop.subscribe(),
        );
        handle.tasks.push(tokio::spawn(task));
    }
    if let Some((listener, addr)) = metrics_listener {
        handle.metrics_addr = Some(addr);
        log::info!("self-metrics listening on http://{addr}/metrics");
        let task = accept_loop(
            listener,
            Endpoint::Metrics(metrics),
            handle.stop.subscribe(),
        );
        handle.tasks.push(tokio::spawn(task));
    }
    Ok(handle)
}

async fn bind(
    what: &str,
    addr: Option<SocketAddr>,
) -> anyhow::Result<Option<(TcpListener, SocketAddr)>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what} endpoint (telemetry.{what}_address)")
    })?;
    let local = listener
        .local_addr()
        .with_context(|| format!("{what} endpoint {addr}"))?;
    Ok(Some((listener, local)))
}

async fn accept_loop(listener: TcpListener, endpoint: Endpoint, mut stop: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        // Stop is signalled by `true` or by the handle being dropped (changed() errs).
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    log::warn!("telemetry endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        while conns.try_join_next().is_some() {}
        let (endpoint, mut stop) = (endpoint.clone(), stop.clone());
        conns.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let answer = respond(&endpoint, &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    });
    let _ = drained.await;
    conns.abort_all();
}

fn respond(endpoint: &Endpoint, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (status, content_type, body) = match endpoint {
        Endpoint::Health(..) if path != "/" => {
            return plain(StatusCode::NOT_FOUND, "not found; try /\n");
        }
        Endpoint::Metrics(_) if path != "/metrics" => {
            return plain(StatusCode::NOT_FOUND, "not found; try /metrics\n");
        }
        _ if req.method() != Method::GET && req.method() != Method::HEAD => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        Endpoint::Health(ready, me) => {
            if let Some(reason) = me.failure() {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    format!(
                        r#"{{"status":"Server not available","reason":{}}}"#,
                        serde_json::Value::String(reason)
                    ),
                )
            } else {
                let (code, body) = ready.answer();
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, "application/json", body)
            }
        }
        Endpoint::Metrics(m) => (
            StatusCode::OK,
            PROMETHEUS_CONTENT_TYPE,
            m.render_prometheus(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
