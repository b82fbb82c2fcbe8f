//! End-to-end HTTP/2 and gRPC tests, as root: the real receiver binary loads the real probes;
//! h2c (prior knowledge) clients and servers — the `h2` crate, a raw-socket client sending
//! CONTINUATION frames, curl, nginx, h2load, Python grpcio — exchange requests on loopback;
//! spans arrive at a real OTLP/gRPC receiver. Every test asserts exact span counts, methods,
//! paths, statuses and gRPC codes, filtered by the test's own port.

use otel_ebpf_integration::{OtlpSink, Receiver, Span, free_port, h2work, prom_value, serial};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Receiver config: only `port`, full 16 KiB capture (header blocks of the CONTINUATION test
/// fit in one syscall's capture).
fn only_port(port: u16) -> String {
    format!(
        "  capture_bytes: 16384\n  request_timeout_seconds: 5\n  filters:\n    include_ports: [{port}]"
    )
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

/// (client?, path or rpc.method, status code or gRPC code) → number of spans.
fn tally(spans: &[Span], key: &str, code: &str) -> BTreeMap<(bool, String, String), usize> {
    let mut m = BTreeMap::new();
    for s in spans {
        let k = (
            s.is_client(),
            s.attr(key).unwrap_or("-").to_string(),
            s.attr(code).unwrap_or("-").to_string(),
        );
        *m.entry(k).or_default() += 1;
    }
    m
}

fn no_kernel_loss(rx: &Receiver) {
    let m = rx.self_metrics();
    assert_eq!(
        prom_value(&m, "otel_ebpf_events_lost_kernel_total"),
        Some(0.0),
        "{m}"
    );
    for c in [
        "otel_ebpf_http2_frame_errors_total",
        "otel_ebpf_hpack_errors_total",
        "otel_ebpf_http2_header_blocks_lost_total",
        "otel_ebpf_http2_streams_dropped_total",
    ] {
        assert_eq!(prom_value(&m, c), Some(0.0), "{c}: {m}");
    }
}

#[test]
fn h2_client_and_server_streams_flow_control_continuation_and_reset() {
    let _g = serial();
    let sink = OtlpSink::start();
    let rt = rt();
    let port = free_port();
    h2work::spawn_server(&rt, port);
    let mut rx = Receiver::start(&only_port(port), Some(&sink.endpoint()), &[]);
    rt.block_on(async {
        let client = h2work::connect(port).await;
        // 100 concurrent streams on one connection.
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let c = client.clone();
                let path = if i % 10 == 0 { "/status/503" } else { "/" };
                tokio::spawn(async move { h2work::get(&c, port, path).await })
            })
            .collect();
        for t in tasks {
            let (status, _) = t.await.unwrap().unwrap();
            assert!(status == 200 || status == 503);
        }
        // 1 MiB response paced by WINDOW_UPDATEs, then a stream the server resets.
        assert_eq!(
            h2work::get(&client, port, "/big").await.unwrap(),
            (200, h2work::BIG)
        );
        let reset = h2work::get(&client, port, "/reset").await.unwrap_err();
        assert_eq!(reset.reason(), Some(h2::Reason::CANCEL), "{reset}");
    });
    // A header block of ~12 KB split into HEADERS + 2 CONTINUATION frames.
    assert!(h2work::continuation_request(port, "/continuation", 12_000) > 0);

    let spans = sink.wait_spans(206, WAIT, on_port(port));
    assert_eq!(
        count(&spans),
        (103, 103),
        "{:#?}",
        tally(&spans, "url.path", "http.response.status_code")
    );
    let t = tally(&spans, "url.path", "http.response.status_code");
    for client in [true, false] {
        let n = |p: &str, c: &str| t.get(&(client, p.into(), c.into())).copied();
        assert_eq!(n("/", "200"), Some(90), "{t:#?}");
        assert_eq!(n("/status/503", "503"), Some(10), "{t:#?}");
        assert_eq!(n("/big", "200"), Some(1), "{t:#?}");
        assert_eq!(n("/reset", "-"), Some(1), "{t:#?}");
        assert_eq!(n("/continuation", "404"), Some(1), "{t:#?}");
    }
    for s in &spans {
        assert_eq!(s.attr("network.protocol.version"), Some("2"), "{s:?}");
        assert_eq!(s.attr("http.request.method"), Some("GET"), "{s:?}");
        let route = s.attr("otel_ebpf.http.route").or(s.attr("http.route"));
        assert_eq!(s.name, format!("GET {}", route.expect("a route")), "{s:?}");
        assert_eq!(s.attr("otel_ebpf.http2.headers_incomplete"), None, "{s:?}");
        assert!(s.end_ns >= s.start_ns && s.start_ns > 0);
        let path = s.attr("url.path").unwrap();
        let want_error =
            path == "/reset" || path == "/status/503" || (s.is_client() && path == "/continuation");
        assert_eq!(s.status == 2, want_error, "{s:?}");
        if path == "/reset" {
            assert_eq!(s.attr("error.type"), Some("CANCEL"), "{s:?}");
        }
    }
    let ua = |p: &str| {
        spans
            .iter()
            .find(|s| s.attr("url.path") == Some(p))
            .and_then(|s| s.attr("user_agent.original"))
            .map(str::to_string)
    };
    assert_eq!(ua("/big").as_deref(), Some("h2-test"));
    assert_eq!(ua("/continuation").as_deref(), Some("raw-continuation"));
    no_kernel_loss(&rx);
    assert_eq!(rx.stop(), Some(0), "clean exit on SIGINT");
}

#[test]
fn curl_prior_knowledge_against_h2_server() {
    let _g = serial();
    let sink = OtlpSink::start();
    let rt = rt();
    let port = free_port();
    h2work::spawn_server(&rt, port);
    let rx = Receiver::start(&only_port(port), Some(&sink.endpoint()), &[]);
    for path in ["/", "/status/404"] {
        let st = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--http2-prior-knowledge"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let spans = sink.wait_spans(4, WAIT, on_port(port));
    let t = tally(&spans, "url.path", "http.response.status_code");
    let want: BTreeMap<_, _> = [
        ((false, "/".to_string(), "200".to_string()), 1),
        ((false, "/status/404".to_string(), "404".to_string()), 1),
        ((true, "/".to_string(), "200".to_string()), 1),
        ((true, "/status/404".to_string(), "404".to_string()), 1),
    ]
    .into();
    assert_eq!(t, want);
    for s in &spans {
        assert_eq!(s.attr("network.protocol.version"), Some("2"));
        // (curl's service.name may be unknown_service: it can exit before /proc is read.)
        assert!(s.attr("user_agent.original").unwrap().starts_with("curl/"));
    }
    let client_404 = spans
        .iter()
        .find(|s| s.is_client() && s.attr("url.path") == Some("/status/404"))
        .unwrap();
    assert_eq!(
        (client_404.status, client_404.attr("error.type")),
        (2, Some("404"))
    );
    no_kernel_loss(&rx);
}

#[test]
fn nginx_h2c_with_curl_and_h2load() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("oer-it-nginx-h2-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n\
         client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;\n\
         uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
         server {{\n    listen 127.0.0.1:{port} http2;\n\
         location = / {{ return 200 \"hello h2\\n\"; }}\n\
         location = /missing {{ return 404 \"nope\\n\"; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut nginx = Command::new("nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    let rx = Receiver::start(&only_port(port), Some(&sink.endpoint()), &[]);
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--http2-prior-knowledge"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .status()
        .unwrap();
    assert!(st.success());
    // 200 requests over 2 connections, 10 concurrent streams each.
    let out = Command::new("h2load")
        .args(["-n", "200", "-c", "2", "-m", "10"])
        .arg(format!("http://127.0.0.1:{port}/missing"))
        .output()
        .expect("h2load (apt nghttp2-client; scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("200 done"), "{text}");
    let spans = sink.wait_spans(402, WAIT, on_port(port));
    otel_ebpf_integration::terminate(&mut nginx);
    let _ = std::fs::remove_dir_all(&dir);
    let t = tally(&spans, "url.path", "http.response.status_code");
    let want: BTreeMap<_, _> = [
        ((false, "/".to_string(), "200".to_string()), 1),
        ((false, "/missing".to_string(), "404".to_string()), 200),
        ((true, "/".to_string(), "200".to_string()), 1),
        ((true, "/missing".to_string(), "404".to_string()), 200),
    ]
    .into();
    assert_eq!(t, want);
    let h2load = spans
        .iter()
        .filter(|s| {
            s.is_client()
                && s.attr("user_agent.original")
                    .is_some_and(|u| u.starts_with("h2load"))
        })
        .count();
    assert_eq!(h2load, 200);
    let nginx_spans = spans
        .iter()
        .filter(|s| s.is_server() && s.resource["process.executable.name"] == "nginx")
        .count();
    assert_eq!(nginx_spans, 201);
    no_kernel_loss(&rx);
}

#[test]
fn python_grpc_unary_streaming_ok_and_error() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/grpc");
    let mut server = Command::new("python3")
        .arg(format!("{dir}/server.py"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "grpcio installed? (scripts/setup.sh installs it)"
    );
    let rx = Receiver::start(&only_port(port), Some(&sink.endpoint()), &[]);
    let out = Command::new("python3")
        .arg(format!("{dir}/client.py"))
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = sink.wait_spans(10, WAIT, on_port(port));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(count(&spans), (5, 5), "{spans:#?}");
    // Calls in order: Echo, Echo, Fail, Stream, Collect. gRPC C-core writes with sendmsg and
    // many iovecs (more than 8); the probes copy up to MAX_IOVECS (32), so every header block
    // is captured and every field must be present and exact.
    let want = [
        ("demo.v1.Greeter/Echo", "OK"),
        ("demo.v1.Greeter/Echo", "OK"),
        ("demo.v1.Greeter/Fail", "NOT_FOUND"),
        ("demo.v1.Greeter/Stream", "OK"),
        ("demo.v1.Greeter/Collect", "OK"),
    ];
    for client in [true, false] {
        let mut side: Vec<&Span> = spans.iter().filter(|s| s.is_client() == client).collect();
        side.sort_by_key(|s| s.start_ns);
        for (s, (method, code)) in side.iter().zip(want) {
            assert_eq!(s.attr("otel_ebpf.http2.headers_incomplete"), None, "{s:?}");
            assert_eq!(s.attr("rpc.method"), Some(method), "{s:?}");
            assert_eq!(s.name, method, "{s:?}");
            assert_eq!(s.attr("rpc.response.status_code"), Some(code), "{s:?}");
            assert_eq!(s.attr("rpc.system.name"), Some("grpc"));
            assert_eq!(s.attr("network.protocol.version"), Some("2"));
            assert_eq!(s.attr("http.request.method"), None);
            // NOT_FOUND: an error for the client only (semconv gRPC span status rules).
            let error = client && code == "NOT_FOUND";
            assert_eq!(s.status == 2, error, "{s:?}");
            assert_eq!(s.attr("error.type").is_some(), error, "{s:?}");
        }
    }
    // Both sides, by start time: methods on the server, codes on the client.
    let server_methods: Vec<_> = {
        let mut v: Vec<&Span> = spans.iter().filter(|s| s.is_server()).collect();
        v.sort_by_key(|s| s.start_ns);
        v.iter()
            .map(|s| s.attr("rpc.method").unwrap_or("-").to_string())
            .collect()
    };
    assert_eq!(server_methods, want.map(|w| w.0.to_string()));
    let client_codes: Vec<_> = {
        let mut v: Vec<&Span> = spans.iter().filter(|s| s.is_client()).collect();
        v.sort_by_key(|s| s.start_ns);
        v.iter()
            .map(|s| {
                s.attr("rpc.response.status_code")
                    .unwrap_or("-")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(client_codes, want.map(|w| w.1.to_string()));
    // rpc.*.call.duration histograms arrive with the same methods.
    let t0 = std::time::Instant::now();
    let names = loop {
        let names: Vec<String> = sink
            .metrics()
            .iter()
            .flat_map(|r| r.resource_metrics.iter())
            .flat_map(|rm| rm.scope_metrics.iter())
            .flat_map(|sm| sm.metrics.iter())
            .map(|m| m.name.clone())
            .collect();
        let done = names.iter().any(|n| n == "rpc.server.call.duration")
            && names.iter().any(|n| n == "rpc.client.call.duration");
        if done || t0.elapsed() > WAIT {
            break names;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        names.iter().any(|n| n == "rpc.server.call.duration"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "rpc.client.call.duration"),
        "{names:?}"
    );
    let m = rx.self_metrics();
    assert_eq!(
        prom_value(&m, "otel_ebpf_events_lost_kernel_total"),
        Some(0.0),
        "{m}"
    );
}
