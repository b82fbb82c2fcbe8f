//! `rustls_server`: an HTTPS/1.1 server on hyper 1 + tokio-rustls 0.26 (rustls 0.23, ring),
//! the server side of the rustls plaintext test (integration/tests/tls_rustls.rs).
//!
//! Usage: `rustls_server CERT.der KEY.der PORT` (DER certificate, PKCS#8 DER key). Listens on
//! 127.0.0.1:PORT (0: a free port) and prints `listening PORT` on stdout. Routes: `GET /hello` → 200
//! `hello`, `POST /echo` → 200 with the request body, anything else → 404. Runs until killed.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/hello") => (StatusCode::OK, Bytes::from_static(b"hello")),
        (&Method::POST, "/echo") => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            (StatusCode::OK, body.unwrap_or_default())
        }
        _ => (StatusCode::NOT_FOUND, Bytes::from_static(b"not found")),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 4,
        "usage: rustls_server CERT.der KEY.der PORT"
    );
    let port: u16 = args[3].parse().context("port")?;
    let cert = std::fs::read(&args[1]).context("certificate")?;
    let key = std::fs::read(&args[2]).context("key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {port}\n").as_bytes())
        .await?;
    out.flush().await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
                .await;
        });
    }
}
