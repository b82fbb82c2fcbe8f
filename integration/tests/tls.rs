//! End-to-end TLS tests, as root: the real receiver attaches uprobes to real TLS libraries
//! (OpenSSL shared and static, GnuTLS, Go `crypto/tls`), real programs started AFTER the
//! receiver exchange HTTPS on loopback, and spans arrive at a real OTLP/gRPC receiver. Every
//! test asserts exact span counts and `url.scheme=https`.

use otel_ebpf_integration::{OtlpSink, Receiver, Span, free_port, serial};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A temporary directory with a self-signed certificate (`cert.pem`, `key.pem`, CN and SAN
/// localhost / 127.0.0.1) made with the openssl CLI, plus the helper programs.
fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("oer-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
            ])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl CLI");
        assert!(st.success(), "openssl req failed");
        std::fs::write(dir.join("server.py"), PY_SERVER).unwrap();
        std::fs::write(dir.join("client.py"), PY_CLIENT).unwrap();
        std::fs::write(dir.join("server.js"), NODE_SERVER).unwrap();
        std::fs::write(dir.join("client.js"), NODE_CLIENT).unwrap();
        dir
    })
}

/// Python `ssl` HTTPS server: HTTP/1.1 keep-alive, `/missing` → 404, TCP_NODELAY.
const PY_SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        code = 404 if self.path.startswith("/missing") else 200
        body = b"hello\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2] + "/cert.pem", sys.argv[2] + "/key.pem")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;

/// Python client: one urllib request (its own connection), then three requests on one
/// keep-alive `http.client` connection.
const PY_CLIENT: &str = r#"
import http.client, ssl, sys, urllib.request
port = int(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2] + "/cert.pem")
urllib.request.urlopen(f"https://127.0.0.1:{port}/urllib", context=ctx).read()
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
for p in ["/k1", "/k2", "/missing"]:
    c.request("GET", p)
    c.getresponse().read()
c.close()
"#;

/// Node https server (OpenSSL linked statically into `node`), keep-alive.
const NODE_SERVER: &str = r#"
const https = require('https'), fs = require('fs');
const dir = process.argv[3];
https.createServer({key: fs.readFileSync(dir + '/key.pem'), cert: fs.readFileSync(dir + '/cert.pem')},
  (req, res) => { res.writeHead(req.url.startsWith('/missing') ? 404 : 200, {'Content-Length': 6}); res.end('hello\n'); })
  .listen(+process.argv[2], '127.0.0.1');
"#;

/// Node https client: two keep-alive agents (two connections), 3 + 2 sequential requests.
const NODE_CLIENT: &str = r#"
const https = require('https');
const port = +process.argv[2];
function get(agent, path) {
  return new Promise((ok, err) => https.get({host: '127.0.0.1', port, path, agent, rejectUnauthorized: false},
    res => { res.resume(); res.on('end', ok); }).on('error', err));
}
(async () => {
  for (const paths of [['/n1', '/n2', '/missing'], ['/n3', '/n4']]) {
    const agent = new https.Agent({keepAlive: true, maxSockets: 1});
    for (const p of paths) await get(agent, p);
    agent.destroy();
  }
})();
"#;

/// Go HTTPS server (`server PORT DIR`) and keep-alive client (`client PORT`: 3 requests on
/// one connection, then 2 on a second transport).
const GO_PROGRAM: &str = r#"package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	port := os.Args[2]
	if os.Args[1] == "server" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/missing") {
				w.WriteHeader(404)
			}
			io.WriteString(w, "hello\n")
		})
		dir := os.Args[3]
		srv := &http.Server{Addr: "127.0.0.1:" + port, TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		fmt.Println(srv.ListenAndServeTLS(dir+"/cert.pem", dir+"/key.pem"))
		return
	}
	for _, paths := range [][]string{{"/g1", "/g2", "/missing"}, {"/g3", "/g4"}} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxConnsPerHost: 1}
		c := &http.Client{Transport: tr}
		for _, p := range paths {
			resp, err := c.Get("https://127.0.0.1:" + port + p)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		tr.CloseIdleConnections()
	}
}
"#;

/// The Go program, built once with Debian's Go (GO111MODULE=off, no network).
fn go_program() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = workdir().join("go");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.go"), GO_PROGRAM).unwrap();
        let out = dir.join("gotls");
        let st = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg("main.go")
            .current_dir(&dir)
            .env("GO111MODULE", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOCACHE", dir.join("cache"))
            .status()
            .expect("`go` is needed (apt-get install golang-go)");
        assert!(st.success(), "go build failed");
        out
    })
}

/// Kills and reaps on drop.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Guard {
    Guard(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
    )
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

/// Receiver capturing only `port` (started before any program of the test).
fn receiver(sink: &OtlpSink, port: u16) -> Receiver {
    Receiver::start(
        &format!("  request_timeout_seconds: 2\n  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    )
}

/// Files with TLS uprobes attached now (receiver self-metric).
fn attached(rx: &Receiver) -> f64 {
    otel_ebpf_integration::prom_value(&rx.self_metrics(), "otel_ebpf_tls_attached_files")
        .unwrap_or(0.0)
}

fn on_port(port: u16) -> impl Fn(&Span) -> bool {
    move |s: &Span| {
        s.attr("server.port") == Some(&port.to_string())
            && !s.attr("url.path").unwrap_or("").starts_with("/warmup")
    }
}

/// Sends `curl` requests to a server whose TLS code lives in its own executable (node, Go)
/// until one shows up as a SERVER span of `service`: from then on its file is attached (the
/// exec → attached time is what the README reports). Returns how long that took.
fn warm_up(sink: &OtlpSink, port: u16, service: &str) -> Duration {
    let t = Instant::now();
    for i in 0..100 {
        let path = format!("/warmup{i}");
        run(Command::new("curl").args([
            "-sk",
            "-o",
            "/dev/null",
            &format!("https://127.0.0.1:{port}{path}"),
        ]));
        let seen = sink.wait_spans(1, Duration::from_millis(300), |s: &Span| {
            s.is_server()
                && s.attr("url.path") == Some(path.as_str())
                && s.resource.get("service.name").map(String::as_str) == Some(service)
        });
        if !seen.is_empty() {
            return t.elapsed();
        }
    }
    panic!("{service} on port {port} never traced");
}

/// Checks the spans: `clients` CLIENT and `servers` SERVER spans, all https, paths as
/// expected (each path once per side), `/missing` → 404, client `url.full` https, the named
/// services.
fn check(spans: &[Span], port: u16, paths: &[&str], client: Option<&str>, server: Option<&str>) {
    let c: Vec<&Span> = spans.iter().filter(|s| s.is_client()).collect();
    let s: Vec<&Span> = spans.iter().filter(|s| s.is_server()).collect();
    let want_c = if client.is_some() { paths.len() } else { 0 };
    let want_s = if server.is_some() { paths.len() } else { 0 };
    assert_eq!((c.len(), s.len()), (want_c, want_s), "{spans:#?}");
    for sp in spans {
        assert_eq!(sp.attr("url.scheme"), Some("https"), "{sp:#?}");
        assert_eq!(sp.name, "GET");
        let path = sp.attr("url.path").unwrap();
        let code = if path.starts_with("/missing") {
            "404"
        } else {
            "200"
        };
        assert_eq!(sp.attr("http.response.status_code"), Some(code), "{sp:#?}");
        assert!(sp.end_ns >= sp.start_ns && sp.start_ns > 0);
        if sp.is_client() {
            assert_eq!(
                sp.attr("url.full"),
                Some(format!("https://127.0.0.1:{port}{path}").as_str()),
                "{sp:#?}"
            );
            assert_eq!(sp.resource["service.name"], client.unwrap(), "{sp:#?}");
        } else {
            assert_eq!(sp.resource["service.name"], server.unwrap(), "{sp:#?}");
        }
    }
    for side in [&c, &s] {
        let mut got: Vec<&str> = side.iter().map(|s| s.attr("url.path").unwrap()).collect();
        got.sort();
        let mut want: Vec<&str> = if side.is_empty() {
            vec![]
        } else {
            paths.to_vec()
        };
        want.sort();
        assert_eq!(got, want, "{spans:#?}");
    }
}

/// Distinct client ports (connections) among the SERVER spans that carry one.
fn server_conns(spans: &[Span]) -> usize {
    let mut p: Vec<&str> = spans
        .iter()
        .filter(|s| s.is_server())
        .filter_map(|s| s.attr("client.port"))
        .collect();
    p.sort();
    p.dedup();
    p.len()
}

fn python_server(port: u16) -> Guard {
    let g = spawn(
        Command::new("python3")
            .arg(workdir().join("server.py"))
            .args([port.to_string(), workdir().display().to_string()]),
    );
    wait_listening(port);
    g
}

/// nginx (OpenSSL) on 127.0.0.1:`port` with `listen … {listen}` and the test certificate,
/// serving `/a` and `/b` ("a\n", "b\n"); returns once it listens.
fn tls_nginx(dir: &std::path::Path, port: u16, listen: &str) -> Guard {
    let ngx = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(ngx.join("html")).unwrap();
    std::fs::write(ngx.join("html/a"), "a\n").unwrap();
    std::fs::write(ngx.join("html/b"), "b\n").unwrap();
    let conf = format!(
        "worker_processes 1; pid {n}/nginx.pid; error_log {n}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; keepalive_timeout 30;\n\
           client_body_temp_path {n}; proxy_temp_path {n}; fastcgi_temp_path {n}; uwsgi_temp_path {n}; scgi_temp_path {n};\n\
           server {{ listen 127.0.0.1:{port} {listen}; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; root {n}/html; }} }}\n",
        n = ngx.display(),
        d = dir.display()
    );
    std::fs::write(ngx.join("nginx.conf"), conf).unwrap();
    let g = spawn(
        Command::new("nginx")
            .arg("-c")
            .arg(ngx.join("nginx.conf"))
            .args(["-g", "daemon off;"]),
    );
    wait_listening(port);
    g
}

#[test]
fn curl_against_nginx_with_tls() {
    let _g = serial();
    let dir = workdir();
    let sink = OtlpSink::start();
    let port = free_port();
    let _rx = receiver(&sink, port);
    let _nginx = tls_nginx(dir, port, "ssl");
    let url = |p: &str| format!("https://127.0.0.1:{port}{p}");
    // Two curl processes, each with two requests on one keep-alive connection.
    run(Command::new("curl").args([
        "-sk",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &url("/a"),
        &url("/b"),
    ]));
    run(Command::new("curl").args([
        "-sk",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &url("/a"),
        &url("/missing"),
    ]));
    let spans = sink.wait_spans(8, WAIT, on_port(port));
    let c: Vec<_> = spans.iter().filter(|s| s.is_client()).collect();
    let s: Vec<_> = spans.iter().filter(|s| s.is_server()).collect();
    assert_eq!((c.len(), s.len()), (4, 4), "{spans:#?}");
    for sp in &spans {
        assert_eq!(sp.attr("url.scheme"), Some("https"), "{sp:#?}");
        let path = sp.attr("url.path").unwrap();
        let code = if path == "/missing" { "404" } else { "200" };
        assert_eq!(sp.attr("http.response.status_code"), Some(code), "{sp:#?}");
        if sp.is_client() {
            assert_eq!(sp.resource["service.name"], "curl");
            assert_eq!(sp.attr("url.full"), Some(url(path).as_str()));
            assert_eq!(
                sp.attr("network.peer.port"),
                Some(port.to_string().as_str())
            );
        } else {
            assert_eq!(sp.resource["service.name"], "nginx");
            assert_eq!(sp.attr("client.address"), Some("127.0.0.1"));
        }
    }
    assert_eq!(server_conns(&spans), 2, "two keep-alive connections");
}

#[test]
fn python_ssl_client_and_server() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let _rx = receiver(&sink, port);
    let _srv = python_server(port);
    run(Command::new("python3")
        .arg(workdir().join("client.py"))
        .args([port.to_string(), workdir().display().to_string()]));
    let spans = sink.wait_spans(8, WAIT, on_port(port));
    check(
        &spans,
        port,
        &["/urllib", "/k1", "/k2", "/missing"],
        Some("python3.11"),
        Some("python3.11"),
    );
    assert_eq!(
        server_conns(&spans),
        2,
        "urllib + one keep-alive connection"
    );
}

#[test]
fn node_https_client_and_server() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    // Node does its socket IO outside SSL_read/SSL_write (memory BIOs): the socket is learnt
    // from the send that follows a write, so the first exchange of a server connection has no
    // tuple and a port filter would drop it; filter by executable instead.
    let rx = Receiver::start(
        "  request_timeout_seconds: 2\n  filters:\n    include_executables: [node]",
        Some(&sink.endpoint()),
        &[],
    );
    let before = attached(&rx);
    let _srv = spawn(
        Command::new("node")
            .arg(workdir().join("server.js"))
            .args([port.to_string(), workdir().display().to_string()]),
    );
    wait_listening(port);
    let _ = (&rx, before);
    eprintln!("node traced after {:?}", warm_up(&sink, port, "node"));
    run(Command::new("node")
        .arg(workdir().join("client.js"))
        .arg(port.to_string()));
    let spans = sink.wait_spans(10, WAIT, on_port(port));
    check(
        &spans,
        port,
        &["/n1", "/n2", "/missing", "/n3", "/n4"],
        Some("node"),
        Some("node"),
    );
}

#[test]
fn gnutls_client() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let _rx = receiver(&sink, port);
    let _srv = python_server(port);
    // Two gnutls-cli processes (two connections), each sending two keep-alive requests;
    // stdin stays open until the responses are in.
    for (a, b) in [("/t1", "/t2"), ("/t3", "/missing")] {
        let req = format!(
            "GET {a} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\nGET {b} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        );
        run(Command::new("sh").arg("-c").arg(format!(
            "(printf '{}'; sleep 1) | gnutls-cli --insecure -p {port} 127.0.0.1 >/dev/null 2>&1; true",
            req.replace('\r', "\\r").replace('\n', "\\n")
        )));
    }
    let spans = sink.wait_spans(8, WAIT, on_port(port));
    check(
        &spans,
        port,
        &["/t1", "/t2", "/t3", "/missing"],
        Some("gnutls-cli"),
        Some("python3.11"),
    );
}

#[test]
fn go_client_and_server() {
    let _g = serial();
    let bin = go_program().clone();
    let sink = OtlpSink::start();
    let port = free_port();
    let rx = receiver(&sink, port);
    let before = attached(&rx);
    let _srv = spawn(Command::new(&bin).args([
        "server",
        &port.to_string(),
        &workdir().display().to_string(),
    ]));
    wait_listening(port);
    let _ = (&rx, before);
    eprintln!("go server traced after {:?}", warm_up(&sink, port, "gotls"));
    run(Command::new(&bin).args(["client", &port.to_string()]));
    let spans = sink.wait_spans(10, WAIT, on_port(port));
    check(
        &spans,
        port,
        &["/g1", "/g2", "/missing", "/g3", "/g4"],
        Some("gotls"),
        Some("gotls"),
    );
    assert_eq!(server_conns(&spans), 2, "two keep-alive connections");
}

#[test]
fn a_process_that_execs_a_tls_client() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let _rx = receiver(&sink, port);
    let _srv = python_server(port);
    let url = |p: &str| format!("https://127.0.0.1:{port}{p}");
    // sh forks and execs curl twice; the last one replaces sh itself (exec without fork).
    run(Command::new("sh").arg("-c").arg(format!(
        "curl -sk -o /dev/null {}; exec curl -sk -o /dev/null {}",
        url("/e1"),
        url("/e2")
    )));
    let spans = sink.wait_spans(4, WAIT, on_port(port));
    check(
        &spans,
        port,
        &["/e1", "/e2"],
        Some("curl"),
        Some("python3.11"),
    );
}

#[test]
fn a_short_lived_process_is_captured_and_named() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let _rx = receiver(&sink, port);
    let _srv = python_server(port);
    // Each run is one curl process making one request; a loaded machine may slow one down,
    // so up to five runs, at least one of which must finish within 50 ms.
    let mut paths = Vec::new();
    let mut fastest = Duration::MAX;
    for i in 0..5 {
        let path = format!("/short{i}");
        let t = Instant::now();
        run(Command::new("curl").args([
            "-sk",
            "-o",
            "/dev/null",
            &format!("https://127.0.0.1:{port}{path}"),
        ]));
        fastest = fastest.min(t.elapsed());
        paths.push(path);
        if fastest < Duration::from_millis(50) {
            break;
        }
    }
    assert!(
        fastest < Duration::from_millis(50),
        "the client must exit within 50 ms for this test to mean anything: {fastest:?}"
    );
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let spans = sink.wait_spans(2 * paths.len(), WAIT, on_port(port));
    check(&spans, port, &paths, Some("curl"), Some("python3.11"));
}

/// HTTP/2 over TLS (ALPN h2): curl → nginx `listen … ssl http2`, both on OpenSSL. The
/// plaintext the uprobes see starts with the connection preface, so the HTTP/2 parser runs on
/// it (issue #5's "over TLS" case).
#[test]
fn curl_http2_over_tls_against_nginx() {
    let _g = serial();
    let dir = workdir();
    let sink = OtlpSink::start();
    let port = free_port();
    let _rx = receiver(&sink, port);
    let _nginx = tls_nginx(dir, port, "ssl http2");
    let url = |p: &str| format!("https://127.0.0.1:{port}{p}");
    // One curl process, three requests as three streams of one HTTP/2 connection.
    run(Command::new("curl").args([
        "-sk",
        "--http2",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &url("/a"),
        &url("/a"),
        &url("/missing"),
    ]));
    let spans = sink.wait_spans(6, WAIT, on_port(port));
    let c = spans.iter().filter(|s| s.is_client()).count();
    let s = spans.iter().filter(|s| s.is_server()).count();
    assert_eq!((c, s), (3, 3), "{spans:#?}");
    for sp in &spans {
        assert_eq!(sp.attr("url.scheme"), Some("https"), "{sp:#?}");
        assert_eq!(sp.attr("network.protocol.version"), Some("2"), "{sp:#?}");
        assert_eq!(sp.attr("http.request.method"), Some("GET"), "{sp:#?}");
        let path = sp.attr("url.path").unwrap();
        let code = if path == "/missing" { "404" } else { "200" };
        assert_eq!(sp.attr("http.response.status_code"), Some(code), "{sp:#?}");
    }
    assert_eq!(server_conns(&spans), 1, "one HTTP/2 connection");
}
