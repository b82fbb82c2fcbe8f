//! End-to-end rustls test, as root: the receiver attaches its rustls uprobes to a Rust HTTPS
//! server (hyper 1 + tokio-rustls 0.26) and client (reqwest 0.13 + rustls 0.23), both built
//! with this crate (`src/bin/rustls_*`) and started after the receiver; spans arrive at a
//! real OTLP/gRPC receiver. Exact span counts, methods, routes, statuses, tuples, and the
//! same-host pairing of each CLIENT span with its SERVER span.

use otel_ebpf_integration::{OtlpSink, Receiver, Span, free_port, serial};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A directory with a self-signed certificate for 127.0.0.1 (`cert.der`, PKCS#8 `key.der`)
/// made with the openssl CLI.
fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("oer-rustls");
        std::fs::create_dir_all(&dir).unwrap();
        let sh = format!(
            "set -e; cd {}; \
             openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
               -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
               -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
               -keyout key.pem -out cert.pem; \
             openssl x509 -in cert.pem -outform DER -out cert.der; \
             openssl pkcs8 -topk8 -nocrypt -in key.pem -outform DER -out key.der",
            dir.display()
        );
        let out = Command::new("sh").arg("-c").arg(&sh).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        otel_ebpf_integration::terminate(&mut self.0);
    }
}

#[test]
fn rustls_client_and_server() {
    let _g = serial();
    let dir = workdir();
    let sink = OtlpSink::start();
    let port = free_port();
    let rx = Receiver::start(
        &format!("  request_timeout_seconds: 2\n  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    );
    let _srv = Guard(
        Command::new(env!("CARGO_BIN_EXE_rustls_server"))
            .arg(dir.join("cert.der"))
            .arg(dir.join("key.der"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    otel_ebpf_integration::wait_listening(port);
    // The client waits before its first request: attaching to a binary the receiver has never
    // seen races with a process that talks at once (README "Known gaps").
    let out = Command::new(env!("CARGO_BIN_EXE_rustls_client"))
        .arg(dir.join("cert.der"))
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("5000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "GET /hello 200 5\nPOST /echo 200 11\nGET /missing 404 9\n"
    );
    let spans = sink.wait_spans(6, WAIT, |s: &Span| {
        s.attr("server.port") == Some(&port.to_string())
    });
    let (c, s): (Vec<&Span>, Vec<&Span>) = spans.iter().partition(|s| s.is_client());
    assert_eq!((c.len(), s.len()), (3, 3), "{spans:#?}");
    for (method, path, code) in [
        ("GET", "/hello", "200"),
        ("POST", "/echo", "200"),
        ("GET", "/missing", "404"),
    ] {
        let one = |side: &[&Span]| -> Span {
            let f: Vec<&&Span> = side
                .iter()
                .filter(|s| s.attr("url.path") == Some(path))
                .collect();
            assert_eq!(f.len(), 1, "{path}: {spans:#?}");
            (*f[0]).clone()
        };
        let (cs, ss) = (one(&c), one(&s));
        for sp in [&cs, &ss] {
            assert_eq!(sp.attr("http.request.method"), Some(method), "{sp:#?}");
            assert_eq!(sp.attr("http.response.status_code"), Some(code), "{sp:#?}");
            assert_eq!(sp.attr("url.scheme"), Some("https"), "{sp:#?}");
            let route = sp.attr("otel_ebpf.http.route").or(sp.attr("http.route"));
            assert_eq!(
                sp.name,
                format!("{method} {}", route.expect("a route")),
                "{sp:#?}"
            );
        }
        assert_eq!(cs.resource["service.name"], "rustls_client", "{cs:#?}");
        assert_eq!(ss.resource["service.name"], "rustls_server", "{ss:#?}");
        assert_eq!(
            cs.attr("url.full"),
            Some(format!("https://127.0.0.1:{port}{path}").as_str()),
            "{cs:#?}"
        );
        assert_eq!(ss.attr("client.address"), Some("127.0.0.1"), "{ss:#?}");
        assert_eq!(ss.parent_span_id, cs.span_id, "SERVER ← CLIENT: {spans:#?}");
        assert_eq!(ss.trace_id, cs.trace_id);
    }
    // Every SERVER span has the client's port. The client usually sends all three on one
    // keep-alive connection, but hyper's pool may open a second one when a request follows
    // the previous response before that connection is back in the pool (seen: /missing on a
    // new port at both ends). That each span's socket is the right one is what the pairing
    // above checks: a SERVER span gets its CLIENT parent only when the two tuples mirror.
    for sp in &s {
        let port = sp.attr("client.port");
        assert!(port.is_some_and(|p| p != "0"), "{sp:#?}");
        assert_eq!(port, sp.attr("network.peer.port"), "{sp:#?}");
    }
    // For the record (docs/tls.md): plaintext events and those without a known socket.
    for line in rx.self_metrics().lines() {
        if line.contains("tls_") && !line.starts_with('#') {
            eprintln!("{line}");
        }
    }
}
