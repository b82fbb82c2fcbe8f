//! Helpers shared by the privileged end-to-end tests.
//!
//! - [`Receiver`]: runs the real `otel-ebpf-receiver` binary (a separate process, so the test
//!   process's own traffic is captured) with a generated config, waits for its health check.
//! - [`OtlpSink`]: a real OTLP/gRPC trace+metrics receiver (tonic, `opentelemetry-proto`) on
//!   127.0.0.1 that stores what it receives.
//! - [`Span`]: a flattened received span for assertions.
//! - [`netns`]: two network namespaces joined by a veth pair, with shaping, random loss, an
//!   HTTP server and kernel counters, for per-layer network timing tests.
//!
//! Tests run one at a time ([`serial`]) because each loads its own probes.

pub mod bench;
pub mod h2work;
pub mod metrics;
pub mod netns;
pub mod sink;
pub mod tlsfix;
pub mod workload;

pub use sink::{OtlpSink, Span};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises tests (each loads its own probes); also checks we are root.
pub fn serial() -> MutexGuard<'static, ()> {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "integration tests load eBPF probes and must run as root (sudo bash scripts/test.sh)"
    );
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `signal` to `child` and reaps it, with SIGKILL once `grace` has passed; returns its
/// exit status (`None` if it could not be reaped). A child already gone is only reaped.
pub fn stop_child(child: &mut Child, signal: i32, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    // SAFETY: a signal to a child we own and have not reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
    let t0 = Instant::now();
    while t0.elapsed() < grace {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Stops `child` with SIGTERM ([`stop_child`], SIGKILL after 5 s). Servers that fork (nginx)
/// take their workers down on SIGTERM; SIGKILL to the master would leave them running.
pub fn terminate(child: &mut Child) {
    stop_child(child, libc::SIGTERM, Duration::from_secs(5));
}

/// `python3 -m http.server` on 127.0.0.1:`port`, serving the integration crate's directory,
/// once it accepts connections (panics after 10 s).
pub fn python_http_server(port: u16) -> Child {
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    child
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port` (panics after 10 s).
pub fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of a binary built in this workspace's target directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps/, binaries in target/<profile>/.
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A running receiver process; stopped with SIGINT on drop.
pub struct Receiver {
    child: Child,
    pub health_port: u16,
    pub metrics_port: u16,
    stdout_path: PathBuf,
}

impl Receiver {
    /// Starts the receiver with `receiver_yaml` (the body of the `receiver:` section, indented
    /// by two spaces) exporting to `otlp_endpoint` (grpc) and waits until it is healthy.
    pub fn start(
        receiver_yaml: &str,
        otlp_endpoint: Option<&str>,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let exporters = match otlp_endpoint {
            Some(e) => format!(
                "exporters:\n  flush_interval_seconds: 0.2\n  metrics_interval_seconds: 1\n  otlp:\n    endpoint: \"{e}\"\n    protocol: grpc\n"
            ),
            None => "exporters:\n  console: true\n  flush_interval_seconds: 0.2\n".to_string(),
        };
        Self::start_config(
            &format!("receiver:\n{receiver_yaml}\n{exporters}"),
            extra_env,
        )
    }

    /// Starts the receiver with `config_yaml` (the `receiver:` and `exporters:` sections; the
    /// `telemetry:` section is added with free ports) and waits until it is healthy.
    pub fn start_config(config_yaml: &str, extra_env: &[(&str, &str)]) -> Self {
        let health_port = free_port();
        let metrics_port = free_port();
        let dir =
            std::env::temp_dir().join(format!("oer-it-{}-{}", std::process::id(), health_port));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config.yaml");
        std::fs::write(
            &cfg,
            format!(
                "{config_yaml}\ntelemetry:\n  health_address: \"127.0.0.1:{health_port}\"\n  metrics_address: \"127.0.0.1:{metrics_port}\"\n"
            ),
        )
        .unwrap();
        let stdout_path = dir.join("stdout.txt");
        let mut cmd = Command::new(workspace_bin("otel-ebpf-receiver"));
        cmd.arg("--config")
            .arg(&cfg)
            .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()));
        for k in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start otel-ebpf-receiver");
        let mut r = Self {
            child,
            health_port,
            metrics_port,
            stdout_path,
        };
        r.wait_healthy(Duration::from_secs(60));
        r
    }

    /// Process id of the receiver.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "receiver exited early with {status}; stdout: {}",
                    self.stdout()
                );
            }
            if http_get_status(self.health_port, "/") == Some(200) {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "receiver not healthy after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The receiver's self-metrics (Prometheus text).
    pub fn self_metrics(&self) -> String {
        http_get_body(self.metrics_port, "/metrics").unwrap_or_default()
    }

    /// Everything the receiver printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// SIGINT, then waits for exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        stop_child(&mut self.child, libc::SIGINT, Duration::from_secs(20)).and_then(|s| s.code())
    }

    /// Sends `signal`, waits for exit (SIGKILL after `grace`); returns the exit code (`None`
    /// when killed by a signal) and the time from the signal to the exit.
    pub fn stop_with(&mut self, signal: i32, grace: Duration) -> (Option<i32>, Duration) {
        let t0 = Instant::now();
        let status = stop_child(&mut self.child, signal, grace);
        (status.and_then(|s| s.code()), t0.elapsed())
    }
}

impl Drop for Receiver {
    /// Stops the receiver and removes its temporary directory (config and stdout), so test
    /// runs leave nothing in /tmp.
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.stdout_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Status code of `GET http://127.0.0.1:port/path`, None if unreachable.
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Body of `GET http://127.0.0.1:port/path`.
pub fn http_get_body(port: u16, path: &str) -> Option<String> {
    let r = http_get(port, path)?;
    r.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Value of a Prometheus counter line `name value` in `text`.
pub fn prom_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

/// A reqwest client builder. The integration crate's reqwest is built with rustls and no
/// default crypto provider (the rustls test programs pick ring, like the receiver): the ring
/// provider is installed process-wide first, once, or building a client panics.
pub fn reqwest_client() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}
