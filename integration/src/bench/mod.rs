//! The overhead benchmark: nginx + wrk/oha with and without the receiver.
//!
//! Stage: a tool, not part of the pipeline. Inputs: [`Plan`] (pairs, durations, rates, CPUs).
//! Output: [`report::Report`] (a table on stdout and JSON). Every run is real: nginx (one
//! worker pinned to one CPU), wrk or oha pinned to the other CPU, the release receiver
//! exporting over OTLP/HTTP to a counting sink in this process that walks the protobuf wire
//! format without decoding it ([`wiresink::WireSink`], its own CPU measured), and optionally
//! `bpftrace` counting on the hooks the receiver needs (`sock:sock_send_length` +
//! `sock:sock_recv_length`; the TLS uprobes, entry and return, for HTTPS): the floor.
//! Runs alternate A (no receiver) / B (receiver) so drift hits both; medians are reported.
//! B runs twice per pair unless told not to: the default config ("B": capture + TCP health +
//! sampled per-packet layer timing, `receiver.kernel_timing.layers: true`) and without layer
//! timing ("B-off", `layers: false`), in alternating order, so layer timing's cost is the
//! per-pair difference B − B-off. The other runs use the default config.
//! Needs root (probes, bpf_stats), nginx, wrk, oha, perf and bpftrace.

pub mod load;
pub mod nginx;
pub mod procstat;
pub mod report;
pub mod syscall;
pub mod wiresink;

use crate::{Receiver, prom_value};
use anyhow::{Context, Result};
use load::{FixedRate, Saturation};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiresink::WireSink;

/// What to run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// A/B pairs (medians over these).
    pub pairs: u32,
    /// Seconds per saturation run (wrk).
    pub sat_secs: u32,
    /// Seconds per fixed-rate run (oha).
    pub fixed_secs: u32,
    /// Fixed rates (req/s); 0 = half of the median A saturation throughput.
    pub rates: Vec<u32>,
    /// wrk connections.
    pub sat_conns: u32,
    /// oha connections.
    pub fixed_conns: u32,
    /// CPU of nginx's worker.
    pub server_cpu: usize,
    /// CPU of the load generator.
    pub client_cpu: usize,
    /// Run the bpftrace floor at saturation.
    pub floor: bool,
    /// Measure the syscall tax.
    pub syscall_tax: bool,
    /// Receiver `receiver:` section lines (indented two spaces), beyond the port filter.
    pub receiver_yaml: String,
    /// Run the receiver both with the default config (B) and with `kernel_timing.layers:
    /// false` (B-off) in every pair.
    pub kernel_timing_ab: bool,
    /// `receiver.kernel_timing.sampling` of B as a YAML flow mapping (empty = the default),
    /// e.g. `{window_seconds: 1, period_seconds: 1}` to time every skb (the in-window cost).
    pub layers_sampling: String,
}

/// `receiver_yaml` plus `kernel_timing.layers: on` (the `receiver:` section's lines; TCP
/// health and the layer sampling stay at their defaults).
pub fn with_kernel_timing(receiver_yaml: &str, on: bool, sampling: &str) -> String {
    let sampling = if on && !sampling.is_empty() {
        format!("    sampling: {sampling}\n")
    } else {
        String::new()
    };
    format!("{receiver_yaml}\n  kernel_timing:\n    layers: {on}\n{sampling}")
}

/// What one B run cost and delivered.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Observed {
    /// Requests nginx served during the run (stub_status delta).
    pub served: u64,
    /// SERVER spans (nginx) received by the sink.
    pub server_spans: u64,
    /// CLIENT spans (load generator) received by the sink.
    pub client_spans: u64,
    /// Receiver user+system CPU during the run and drain (s).
    pub cpu_s: f64,
    /// The counting sink's own CPU during the run and drain (s).
    pub sink_cpu_s: f64,
    /// BPF programs' run time during the run (ns).
    pub bpf_ns: u64,
    /// BPF program runs during the run.
    pub bpf_runs: u64,
    /// Of `bpf_ns`: the kernel timing programs' run time (ns).
    pub bpf_kt_ns: u64,
    /// Of `bpf_runs`: the kernel timing programs' runs.
    pub bpf_kt_runs: u64,
    /// BPF programs the receiver held.
    pub bpf_programs: u32,
    /// Of those, kernel timing programs ([`procstat::is_kernel_timing`]).
    pub kt_programs: u32,
    /// Runs and run time during the run per program name (kernel-truncated to 15 bytes).
    pub bpf_by_program: std::collections::BTreeMap<String, procstat::ProgSum>,
    /// Receiver peak RSS (bytes, VmHWM).
    pub peak_rss: u64,
    /// Memory charged to the receiver's BPF maps (bytes).
    pub map_bytes: u64,
    /// Kernel-side losses (ring buffer full, map full, unreadable payload).
    pub kernel_lost: f64,
    /// Spans the receiver dropped (export queue) or failed to build.
    pub spans_dropped: f64,
    /// Events the receiver could not decode.
    pub decode_errors: f64,
    /// HTTP parse errors.
    pub parse_errors: f64,
}

impl Observed {
    /// µs of CPU (receiver + BPF) per served request.
    pub fn us_per_request(&self) -> f64 {
        (self.cpu_s * 1e9 + self.bpf_ns as f64) / self.served.max(1) as f64 / 1000.0
    }
    /// µs of CPU (receiver + BPF) per exported span.
    pub fn us_per_span(&self) -> f64 {
        (self.cpu_s * 1e9 + self.bpf_ns as f64)
            / (self.server_spans + self.client_spans).max(1) as f64
            / 1000.0
    }
    /// µs of the counting sink's CPU per served request (not part of the receiver's cost).
    pub fn sink_us_per_request(&self) -> f64 {
        self.sink_cpu_s * 1e6 / self.served.max(1) as f64
    }
    /// µs of receiver (user-space process) CPU per served request.
    pub fn receiver_us_per_request(&self) -> f64 {
        self.cpu_s * 1e6 / self.served.max(1) as f64
    }
    /// µs of BPF run time (all programs) per served request.
    pub fn bpf_us_per_request(&self) -> f64 {
        self.bpf_ns as f64 / self.served.max(1) as f64 / 1000.0
    }
    /// µs of the kernel timing programs' run time per served request.
    pub fn kt_bpf_us_per_request(&self) -> f64 {
        self.bpf_kt_ns as f64 / self.served.max(1) as f64 / 1000.0
    }
    /// µs of the capture programs' (all but kernel timing) run time per served request.
    pub fn capture_bpf_us_per_request(&self) -> f64 {
        (self.bpf_ns - self.bpf_kt_ns) as f64 / self.served.max(1) as f64 / 1000.0
    }
    /// SERVER spans ÷ requests served.
    pub fn server_completeness(&self) -> f64 {
        self.server_spans as f64 / self.served.max(1) as f64
    }
    /// CLIENT spans ÷ requests served.
    pub fn client_completeness(&self) -> f64 {
        self.client_spans as f64 / self.served.max(1) as f64
    }
}

/// A receiver under test plus the sink it exports to.
pub struct Attached {
    pub receiver: Receiver,
    pub sink: WireSink,
    port: u16,
}

impl Attached {
    /// Starts the receiver (release build next to this binary) filtered to `port`.
    pub fn start(port: u16, receiver_yaml: &str) -> Self {
        Self::start_ports(&[port], port, receiver_yaml)
    }

    /// Starts the receiver filtered to `ports`; spans are counted for `server.port` = `port`.
    pub fn start_ports(ports: &[u16], port: u16, receiver_yaml: &str) -> Self {
        let sink = WireSink::start().expect("start the counting sink");
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let ports = ports.join(", ");
        let cfg = format!(
            "receiver:\n  filters:\n    include_ports: [{ports}]\n{receiver_yaml}\n\
             exporters:\n  otlp:\n    endpoint: \"{}\"\n    protocol: http/protobuf\n",
            sink.endpoint()
        );
        let receiver = Receiver::start_config(&cfg, &[]);
        Self {
            receiver,
            sink,
            port,
        }
    }

    fn spans(&self) -> (u64, u64) {
        (self.sink.count(2, self.port), self.sink.count(3, self.port))
    }

    /// Runs `load` and measures it: waits after it until every span expected arrived or
    /// nothing changed for 3 s (at most 60 s).
    pub fn measure<T>(
        &self,
        nginx: &nginx::Nginx,
        load: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Observed)> {
        let pid = self.receiver.pid();
        let (s0, c0) = self.spans();
        let served0 = nginx.requests()?;
        let cpu0 = procstat::cpu_seconds(pid)?;
        let sink0 = self.sink.cpu_seconds();
        let bpf0 = procstat::bpf_usage(pid)?;
        let out = load()?;
        let served = nginx.requests()? - served0 - 1;
        let t0 = Instant::now();
        let mut last = self.spans();
        let mut changed = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.spans();
            if now.0 - s0 >= served && now.1 - c0 >= served {
                break;
            }
            if now != last {
                last = now;
                changed = Instant::now();
            }
            if changed.elapsed() > Duration::from_secs(3) || t0.elapsed() > Duration::from_secs(60)
            {
                break;
            }
        }
        let (s1, c1) = self.spans();
        let cpu1 = procstat::cpu_seconds(pid)?;
        let sink1 = self.sink.cpu_seconds();
        let bpf1 = procstat::bpf_usage(pid)?;
        let m = self.receiver.self_metrics();
        let kernel_lost = [
            "data_lost_ringbuf_full",
            "control_lost_ringbuf_full",
            "conn_map_full",
            "payload_read_failed",
        ]
        .iter()
        .filter_map(|c| {
            prom_value(
                &m,
                &format!("otel_ebpf_kernel_events_total{{counter=\"{c}\"}}"),
            )
        })
        .sum();
        Ok((
            out,
            Observed {
                served,
                server_spans: s1 - s0,
                client_spans: c1 - c0,
                cpu_s: cpu1 - cpu0,
                sink_cpu_s: sink1 - sink0,
                bpf_ns: bpf1.run_time_ns - bpf0.run_time_ns,
                bpf_runs: bpf1.run_cnt - bpf0.run_cnt,
                bpf_kt_ns: bpf1.kernel_timing.run_time_ns - bpf0.kernel_timing.run_time_ns,
                bpf_kt_runs: bpf1.kernel_timing.run_cnt - bpf0.kernel_timing.run_cnt,
                bpf_programs: bpf1.programs,
                kt_programs: bpf1.kernel_timing.programs,
                bpf_by_program: bpf1
                    .by_name
                    .iter()
                    .map(|(n, p)| {
                        let before = bpf0.by_name.get(n).copied().unwrap_or_default();
                        (n.clone(), p.since(&before))
                    })
                    .collect(),
                peak_rss: procstat::status_bytes(pid, "VmHWM")?,
                map_bytes: bpf1.map_bytes,
                kernel_lost,
                spans_dropped: prom_value(&m, "otel_ebpf_spans_dropped_total").unwrap_or(0.0),
                decode_errors: prom_value(&m, "otel_ebpf_decode_errors_total").unwrap_or(0.0),
                parse_errors: prom_value(&m, "otel_ebpf_parse_errors_total").unwrap_or(0.0),
            },
        ))
    }
}

/// `bpftrace` counting hits on a set of probes and doing nothing else: the floor cost of
/// hooking what the receiver hooks. Killed on drop.
pub struct Floor(Child);

/// The receiver's plaintext hooks: the two socket tracepoints.
pub const SOCK_FLOOR: &[&str] = &[
    "tracepoint:sock:sock_send_length",
    "tracepoint:sock:sock_recv_length",
];

/// The OpenSSL uprobes of `libssl` (entry and return), as the receiver attaches them.
pub fn tls_floor(libssl: &str) -> Vec<String> {
    ["SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex"]
        .iter()
        .flat_map(|f| {
            [
                format!("uprobe:{libssl}:{f}"),
                format!("uretprobe:{libssl}:{f}"),
            ]
        })
        .collect()
}

/// The `libssl` file `program` (found on PATH) is linked with (`ldd`), if any.
pub fn libssl_of(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    let exe = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.exists())?;
    let out = Command::new("ldd").arg(exe).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (name, rest) = l.trim().split_once(" => ")?;
        name.starts_with("libssl.")
            .then(|| rest.split_whitespace().next().map(str::to_string))?
    })
}

impl Floor {
    /// Starts bpftrace counting on `probes` and waits until they are attached.
    pub fn start<S: AsRef<str>>(probes: &[S]) -> Result<Self> {
        let probes: Vec<&str> = probes.iter().map(|p| p.as_ref()).collect();
        let prog = format!("{} {{ @hits = count(); }}", probes.join(","));
        let mut child = Command::new("bpftrace")
            .args(["-e", &prog])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("run bpftrace (apt-get install bpftrace)")?;
        // bpftrace prints "Attaching N probes..." once they are attached.
        let mut out = child.stdout.take().context("bpftrace stdout")?;
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut out, &mut buf)?;
        anyhow::ensure!(
            String::from_utf8_lossy(&buf[..n]).contains("Attaching"),
            "bpftrace did not attach: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        std::thread::sleep(Duration::from_millis(500));
        std::mem::forget(out); // keep the pipe open so bpftrace never gets SIGPIPE
        Ok(Self(child))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        // SAFETY: signal to a child we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        // bpftrace has been seen not to exit on SIGINT on this VM under load: 5 s, then KILL.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One A/B pair of saturation runs plus the floor. B = default config (kernel timing on);
/// B-off = the default config, layer timing off (absent with `--no-kernel-timing-ab`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SatPair {
    pub a: Saturation,
    pub b: Saturation,
    pub b_observed: Observed,
    pub b_off: Option<(Saturation, Observed)>,
    pub floor: Option<Saturation>,
}

/// One A/B pair at a fixed rate (B and B-off as in [`SatPair`]).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FixedPair {
    pub rate: u32,
    pub a: FixedRate,
    pub b: FixedRate,
    pub b_observed: Observed,
    pub b_off: Option<(FixedRate, Observed)>,
}

/// Pause between runs so sockets in TIME_WAIT and the page cache settle.
pub fn pause() {
    std::thread::sleep(Duration::from_secs(1));
}
