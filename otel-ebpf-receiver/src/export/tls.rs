//! TLS to the OTLP backend with rustls (ring provider).
//!
//! Stage: set-up of **export** transports, run once in `Exporter::start`. Input:
//! [`TlsSettings`] (PEM file paths). Output: checked PEM material, turned into a tonic
//! `ClientTlsConfig` (gRPC) or a rustls `ClientConfig` (HTTP).
//! Trust: the given CA file(s) only when `OTEL_EXPORTER_OTLP_CERTIFICATE` is set, otherwise the
//! system roots (`rustls-native-certs`, honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`). mTLS with
//! `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` + `_CLIENT_KEY`. Sources: OTLP exporter spec,
//! "Configuration Options" (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>).
//! Limits: missing, unreadable or non-PEM files are errors at start, naming the setting.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::{ExportError, FileSetting, TlsSettings};

/// PEM material read from the configured files.
pub(crate) struct TlsMaterial {
    /// CA file contents and parsed certificates (`None`: use system roots).
    ca: Option<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    /// Client certificate chain and key (PEM bytes and parsed).
    identity: Option<ClientIdentity>,
}

struct ClientIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn file_error(f: &FileSetting, reason: impl Into<String>) -> ExportError {
    ExportError::TlsFile {
        origin: f.origin.clone(),
        path: f.path.display().to_string(),
        reason: reason.into(),
    }
}

fn read(f: &FileSetting) -> Result<Vec<u8>, ExportError> {
    std::fs::read(&f.path).map_err(|e| file_error(f, format!("cannot read: {e}")))
}

fn certs(f: &FileSetting, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ExportError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(f, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(f, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

impl TlsMaterial {
    /// Reads and parses every configured file.
    pub fn load(tls: &TlsSettings) -> Result<Self, ExportError> {
        let ca = match &tls.certificate {
            Some(f) => {
                let pem = read(f)?;
                let parsed = certs(f, &pem)?;
                Some((pem, parsed))
            }
            None => None,
        };
        let identity = match (&tls.client_certificate, &tls.client_key) {
            (Some(c), Some(k)) => {
                let cert_pem = read(c)?;
                let chain = certs(c, &cert_pem)?;
                let key_pem = read(k)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| file_error(k, format!("no usable private key: {e}")))?;
                Some(ClientIdentity {
                    cert_pem,
                    key_pem,
                    chain,
                    key,
                })
            }
            (Some(f), None) | (None, Some(f)) => {
                return Err(file_error(
                    f,
                    "client certificate and client key must both be set",
                ));
            }
            (None, None) => None,
        };
        Ok(Self { ca, identity })
    }

    /// tonic TLS settings for a gRPC channel.
    pub fn tonic_config(&self) -> ClientTlsConfig {
        let mut cfg = ClientTlsConfig::new();
        cfg = match &self.ca {
            Some((pem, _)) => cfg.ca_certificate(Certificate::from_pem(pem)),
            None => cfg.with_native_roots(),
        };
        if let Some(id) = &self.identity {
            cfg = cfg.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
        }
        cfg
    }

    /// rustls client configuration (ALPN set by the caller). `origin` names the endpoint
    /// setting for errors.
    pub fn rustls_config(&self, origin: &str) -> Result<rustls::ClientConfig, ExportError> {
        let start_err = |what: &str, e: &dyn std::fmt::Display| {
            ExportError::Start(format!("{origin}: TLS set-up: {what}: {e}"))
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| start_err("protocol versions", &e))?;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some((_, certs)) => {
                let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
                if added == 0 {
                    return Err(start_err("CA file", &"no usable CA certificate"));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                if !native.errors.is_empty() {
                    log::debug!("errors loading system CA certificates: {:?}", native.errors);
                }
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(start_err("system roots", &"no CA certificates found"));
                }
            }
        }
        let builder = builder.with_root_certificates(roots);
        match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| start_err("client certificate/key", &e)),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::support::testdata;
    use std::path::PathBuf;

    fn fs(path: impl Into<PathBuf>, origin: &str) -> Option<FileSetting> {
        Some(FileSetting {
            path: path.into(),
            origin: origin.into(),
        })
    }

    fn err(tls: TlsSettings) -> String {
        match TlsMaterial::load(&tls) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_ca_file_names_the_variable_and_path() {
        let msg = err(TlsSettings {
            certificate: fs("/nonexistent/ca.pem", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
            ..Default::default()
        });
        assert!(
            msg.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: /nonexistent/ca.pem: cannot read: "),
            "{msg}"
        );
    }

    #[test]
    fn non_pem_ca_file_is_rejected() {
        let dir = std::env::temp_dir().join(format!("otel-export-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-cert.pem");
        std::fs::write(&path, "hello\n").unwrap();
        let msg = err(TlsSettings {
            certificate: fs(&path, "exporters.otlp.certificate"),
            ..Default::default()
        });
        assert_eq!(
            msg,
            format!(
                "exporters.otlp.certificate: {}: no CERTIFICATE block found",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_file_without_key_is_rejected() {
        let msg = err(TlsSettings {
            client_certificate: fs(
                testdata("client.pem"),
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
            client_key: fs(testdata("ca.pem"), "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            ..Default::default()
        });
        assert!(msg.starts_with("OTEL_EXPORTER_OTLP_CLIENT_KEY: "), "{msg}");
        assert!(msg.contains("no usable private key"), "{msg}");
    }

    #[test]
    fn valid_files_give_rustls_and_tonic_configs() {
        let m = TlsMaterial::load(&TlsSettings {
            certificate: fs(testdata("ca.pem"), "c"),
            client_certificate: fs(testdata("client.pem"), "cc"),
            client_key: fs(testdata("client.key"), "ck"),
        })
        .unwrap();
        let cfg = m.rustls_config("endpoint").unwrap();
        assert!(cfg.client_auth_cert_resolver.has_certs());
        let _ = m.tonic_config();
    }
}
