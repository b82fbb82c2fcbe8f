//! `rustls_client`: an HTTPS client on reqwest 0.13 + rustls 0.23 (ring provider, no
//! platform verifier: the test's self-signed certificate is the only root), the client side
//! of the rustls plaintext test (integration/tests/tls_rustls.rs).
//!
//! Usage: `rustls_client CERT.der https://127.0.0.1:PORT [DELAY_MS]`. Waits DELAY_MS (default
//! 0) after start, then makes, on one keep-alive
//! connection: `GET /hello`, `POST /echo` (body `ping-rustls`), `GET /missing`; prints each
//! status and exits non-zero on a transport error.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::CertificateDer;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3 || args.len() == 4,
        "usage: rustls_client CERT.der BASE_URL [DELAY_MS]"
    );
    if let Some(ms) = args.get(3) {
        tokio::time::sleep(std::time::Duration::from_millis(ms.parse()?)).await;
    }
    let cert = std::fs::read(&args[1]).context("certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .build()?;
    let base = &args[2];
    for (method, path, body) in [
        (reqwest::Method::GET, "/hello", None),
        (reqwest::Method::POST, "/echo", Some("ping-rustls")),
        (reqwest::Method::GET, "/missing", None),
    ] {
        let mut req = client.request(method.clone(), format!("{base}{path}"));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        println!("{method} {path} {} {}", status.as_u16(), text.len());
    }
    Ok(())
}
