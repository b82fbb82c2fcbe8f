//! End-to-end HTTP/1 tests, as root: the real receiver binary loads the real probes, real
//! clients and servers exchange HTTP on loopback, and spans arrive at a real OTLP/gRPC
//! receiver over the network. Every test asserts exact span counts and attributes.

use otel_ebpf_integration::{
    OtlpSink, Receiver, Span, free_port, prom_value, python_http_server, serial, workload,
};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn only_port(port: u16) -> String {
    format!("  request_timeout_seconds: 1\n  filters:\n    include_ports: [{port}]")
}

/// Serial guard, OTLP sink, runtime with the hyper workload on a free port, and a receiver
/// capturing only that port.
fn hyper_setup() -> (
    std::sync::MutexGuard<'static, ()>,
    OtlpSink,
    tokio::runtime::Runtime,
    u16,
    Receiver,
) {
    let g = serial();
    let sink = OtlpSink::start();
    let rt = rt();
    let port = free_port();
    workload::spawn_server(&rt, port);
    let rx = Receiver::start(&only_port(port), Some(&sink.endpoint()), &[]);
    (g, sink, rt, port, rx)
}

fn on_port(port: u16) -> impl Fn(&Span) -> bool {
    move |s: &Span| s.attr("server.port") == Some(&port.to_string())
}

fn count(spans: &[Span]) -> (usize, usize) {
    (
        spans.iter().filter(|s| s.is_client()).count(),
        spans.iter().filter(|s| s.is_server()).count(),
    )
}

#[test]
fn curl_against_python_http_server() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    // Listening before the receiver starts (the readiness connects are not HTTP exchanges).
    let mut py = python_http_server(port);
    let mut rx = Receiver::start(&only_port(port), Some(&sink.endpoint()), &[]);
    for path in ["/Cargo.toml", "/src/", "/missing?q=1"] {
        let st = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}{path}"),
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let spans = sink.wait_spans(6, WAIT, on_port(port));
    assert_eq!(count(&spans), (3, 3), "{spans:#?}");
    for s in &spans {
        let route = s.attr("otel_ebpf.http.route").or(s.attr("http.route"));
        assert_eq!(s.name, format!("GET {}", route.expect("a route")), "{s:?}");
        assert_eq!(s.attr("http.request.method"), Some("GET"));
        assert_eq!(s.attr("url.scheme"), Some("http"));
        assert_eq!(s.attr("network.protocol.version"), Some("1.1"));
        assert!(
            s.attr("user_agent.original").unwrap().starts_with("curl/"),
            "{s:?}"
        );
        assert!(s.end_ns >= s.start_ns && s.start_ns > 0);
        assert_eq!(s.attr("url.query"), None, "url.query is off by default");
    }
    let by = |path: &str, client: bool| {
        spans
            .iter()
            .find(|s| s.attr("url.path") == Some(path) && s.is_client() == client)
            .unwrap_or_else(|| panic!("{path} {client}: {spans:#?}"))
    };
    assert_eq!(
        by("/Cargo.toml", true).attr("http.response.status_code"),
        Some("200")
    );
    assert_eq!(
        by("/src/", false).attr("http.response.status_code"),
        Some("200")
    );
    let missing_c = by("/missing", true);
    let missing_s = by("/missing", false);
    assert_eq!(missing_c.attr("http.response.status_code"), Some("404"));
    assert_eq!(missing_c.status, 2, "client 4xx is an error");
    assert_eq!(missing_c.attr("error.type"), Some("404"));
    assert_eq!(missing_s.status, 0, "server 4xx is not an error");
    let server = by("/src/", false);
    assert!(
        server.resource["process.executable.name"].starts_with("python3"),
        "{server:?}"
    );
    assert!(server.resource["process.command_line"].contains("http.server"));
    assert_eq!(server.resource["process.pid"], py.id().to_string());
    assert_eq!(server.attr("client.address"), Some("127.0.0.1"));
    let client = by("/src/", true);
    assert_eq!(client.resource["service.name"], "curl");
    assert_eq!(client.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(rx.stop(), Some(0), "clean exit on SIGINT");
    let _ = py.kill();
    let _ = py.wait();
}

#[test]
fn hyper_keepalive_200_requests_on_one_connection() {
    let (_g, sink, rt, port, rx) = hyper_setup();
    rt.block_on(async {
        // hyper's connection-level client: exactly one TCP connection, 200 sequential requests
        // (reqwest's pool may open extra connections when requests follow each other closely).
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        for _ in 0..200 {
            let req = hyper::Request::get("/")
                .header("host", format!("127.0.0.1:{port}"))
                .header("user-agent", "keepalive-test")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            send.ready().await.unwrap();
            let r = send.send_request(req).await.unwrap();
            let body = http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&body[..], b"hello");
        }
    });
    let spans = sink.wait_spans(400, WAIT, on_port(port));
    assert_eq!(count(&spans), (200, 200));
    let mut client_ports = std::collections::BTreeMap::<String, usize>::new();
    for s in spans.iter().filter(|s| s.is_server()) {
        *client_ports
            .entry(s.attr("client.port").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        client_ports.len(),
        1,
        "one keep-alive connection: {client_ports:?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.attr("http.response.status_code") == Some("200")
                && s.attr("url.path") == Some("/"))
    );
    let m = rx.self_metrics();
    assert_eq!(
        prom_value(&m, "otel_ebpf_events_lost_kernel_total"),
        Some(0.0),
        "{m}"
    );
    assert!(
        prom_value(&m, "otel_ebpf_spans_exported_total").unwrap() >= 400.0,
        "{m}"
    );
}

#[test]
fn fifty_concurrent_connections() {
    let (_g, sink, rt, port, _rx) = hyper_setup();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..50 {
            tasks.push(tokio::spawn(async move {
                let c = otel_ebpf_integration::reqwest_client()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                for _ in 0..2 {
                    let r = c
                        .get(format!("http://127.0.0.1:{port}/status/{}", 200 + i % 2))
                        .send()
                        .await
                        .unwrap();
                    r.bytes().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let spans = sink.wait_spans(200, WAIT, on_port(port));
    assert_eq!(count(&spans), (100, 100));
    let servers: Vec<_> = spans.iter().filter(|s| s.is_server()).collect();
    let conns: std::collections::BTreeSet<_> = servers
        .iter()
        .map(|s| s.attr("client.port").unwrap())
        .collect();
    assert_eq!(conns.len(), 50);
    // Each span pairs the right response with its request.
    for s in &spans {
        let path_code = s
            .attr("url.path")
            .unwrap()
            .trim_start_matches("/status/")
            .to_string();
        assert_eq!(
            s.attr("http.response.status_code"),
            Some(path_code.as_str()),
            "{s:?}"
        );
    }
}

#[test]
fn pipelined_requests() {
    let (_g, sink, _rt, port, _rx) = hyper_setup();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/203 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out.matches("HTTP/1.1 20").count(), 3);
    let spans = sink.wait_spans(6, WAIT, on_port(port));
    assert_eq!(count(&spans), (3, 3), "{spans:#?}");
    for code in ["201", "202", "203"] {
        let path = format!("/status/{code}");
        let pair: Vec<_> = spans
            .iter()
            .filter(|s| s.attr("url.path") == Some(path.as_str()))
            .collect();
        assert_eq!(pair.len(), 2);
        assert!(
            pair.iter()
                .all(|s| s.attr("http.response.status_code") == Some(code))
        );
    }
}

#[test]
fn chunked_response_and_one_mib_bodies() {
    let (_g, sink, rt, port, _rx) = hyper_setup();
    rt.block_on(async {
        let c = otel_ebpf_integration::reqwest_client()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let u = |p: &str| format!("http://127.0.0.1:{port}{p}");
        assert_eq!(
            c.get(u("/chunked"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "one,two,three,four"
        );
        assert_eq!(
            c.get(u("/big"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len(),
            workload::BIG
        );
        let r = c
            .post(u("/upload"))
            .body(vec![b'y'; workload::BIG])
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), workload::BIG.to_string());
        // Pairing after the big bodies stays right on the same connection.
        assert_eq!(c.get(u("/status/202")).send().await.unwrap().status(), 202);
    });
    let spans = sink.wait_spans(8, WAIT, on_port(port));
    assert_eq!(count(&spans), (4, 4), "{spans:#?}");
    let expect = [
        ("/chunked", "GET", "200"),
        ("/big", "GET", "200"),
        ("/upload", "POST", "200"),
        ("/status/202", "GET", "202"),
    ];
    for (path, method, code) in expect {
        let both: Vec<_> = spans
            .iter()
            .filter(|s| s.attr("url.path") == Some(path))
            .collect();
        assert_eq!(both.len(), 2, "{path}: {spans:#?}");
        for s in both {
            assert_eq!(s.attr("http.request.method"), Some(method));
            assert_eq!(s.attr("http.response.status_code"), Some(code));
        }
    }
}

#[test]
fn server_that_never_answers_times_out() {
    let (_g, sink, rt, port, _rx) = hyper_setup();
    rt.block_on(async {
        let c = otel_ebpf_integration::reqwest_client()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        assert!(
            c.get(format!("http://127.0.0.1:{port}/never"))
                .send()
                .await
                .is_err()
        );
    });
    let spans = sink.wait_spans(2, WAIT, on_port(port));
    assert_eq!(count(&spans), (1, 1), "{spans:#?}");
    for s in &spans {
        assert_eq!(s.attr("url.path"), Some("/never"));
        assert_eq!(s.attr("http.response.status_code"), None);
        assert_eq!(s.attr("error.type"), Some("timeout"), "{s:?}");
        assert_eq!(s.status, 2);
    }
}

#[test]
fn exports_through_rotel_collector() {
    let _g = serial();
    let sink = OtlpSink::start();
    let rotel_port = free_port();
    let rotel = std::process::Command::new("python3")
        .args([
            "-c",
            "import rotel,os;print(os.path.join(os.path.dirname(rotel.__file__),'rotel-agent'))",
        ])
        .output()
        .expect("python3 with rotel (scripts/setup.sh installs it)");
    let rotel_bin = String::from_utf8(rotel.stdout).unwrap().trim().to_string();
    let mut rotel = Command::new(&rotel_bin)
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{rotel_port}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{}", free_port()),
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            &sink.endpoint(),
            "--otlp-exporter-protocol",
            "grpc",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rotel-agent");
    let rt = rt();
    let port = free_port();
    workload::spawn_server(&rt, port);
    let _rx = Receiver::start(
        &only_port(port),
        Some(&format!("http://127.0.0.1:{rotel_port}")),
        &[],
    );
    for _ in 0..5 {
        let st = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                &format!("http://127.0.0.1:{port}/status/503"),
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let spans = sink.wait_spans(10, Duration::from_secs(30), on_port(port));
    let _ = rotel.kill();
    let _ = rotel.wait();
    assert_eq!(count(&spans), (5, 5), "{spans:#?}");
    for s in &spans {
        assert_eq!(s.attr("http.response.status_code"), Some("503"));
        assert_eq!(s.status, 2, "5xx is an error on both sides");
    }
}
