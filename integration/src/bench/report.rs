//! Benchmark report: medians over A/B pairs, the targets, a table and JSON.
//!
//! Input: the pairs measured by the `bench` binary. Output: [`Report`] (serialised as JSON)
//! and [`Report::table`] (text). Ratios are B/A of medians' pairs: each pair's ratio first,
//! then the median of the ratios (pairs ran back to back, so drift cancels inside a pair).
//! The kernel timing hooks' cost is the median of the per-pair differences B − B-off
//! ([`KernelTimingRow`]); their own BPF programs are also timed directly (by program name).

use super::{FixedPair, Observed, Plan, SatPair};

/// The syscall tax (ns per call) without and with the receiver loaded (no traffic).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyscallTax {
    pub getppid_ns_without: f64,
    pub getppid_ns_with: f64,
    pub devnull_write_ns_without: f64,
    pub devnull_write_ns_with: f64,
}

/// Medians for one fixed rate.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RateSummary {
    pub rate: u32,
    pub achieved_rps_b: f64,
    pub p50_ratio: f64,
    pub p99_ratio: f64,
    pub p999_ratio: f64,
    pub p99_a_ms: f64,
    pub p99_b_ms: f64,
    pub server_completeness: f64,
    pub client_completeness: f64,
    pub us_per_request: f64,
    pub us_per_span: f64,
    pub bpf_us_per_request: f64,
    pub kernel_lost: f64,
}

/// One receiver configuration at one load: medians over the pairs (ratios against each
/// pair's A run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ConfigSummary {
    /// Achieved req/s ÷ A's.
    pub throughput_ratio: f64,
    /// p99 latency ÷ A's (fixed rate only).
    pub p99_ratio: Option<f64>,
    /// Receiver CPU + BPF run time per request (µs).
    pub us_per_request: f64,
    /// Receiver (user-space process) CPU per request (µs).
    pub receiver_us_per_request: f64,
    /// BPF run time per request, all programs (µs).
    pub bpf_us_per_request: f64,
    /// BPF run time per request of the kernel timing programs (µs).
    pub kt_bpf_us_per_request: f64,
    /// Kernel timing programs the receiver held (most over the pairs).
    pub kt_programs: u32,
    pub server_completeness: f64,
    pub client_completeness: f64,
    /// Kernel-side losses, summed over the pairs.
    pub kernel_lost: f64,
}

/// What the kernel timing hooks cost: medians of the per-pair differences on − off.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KernelTimingCost {
    /// Receiver CPU + BPF per request (µs).
    pub us_per_request: f64,
    /// Receiver (user-space) CPU per request (µs).
    pub receiver_us_per_request: f64,
    /// BPF run time per request, all programs (µs): the hooks plus their work in the capture
    /// programs (`sock_send_length`, `inet_sock_set_state`).
    pub bpf_us_per_request: f64,
    /// Throughput ratio (vs A) difference.
    pub throughput_ratio: f64,
    /// p99 ratio (vs A) difference (fixed rate only).
    pub p99_ratio: Option<f64>,
}

/// One load (saturation or a fixed rate) with the receiver capture-only (off) and with the
/// kernel timing hooks (on, the default config).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KernelTimingRow {
    /// "saturation" or "fixed N req/s".
    pub load: String,
    /// Capture only (absent with `--no-kernel-timing-ab`).
    pub off: Option<ConfigSummary>,
    /// Capture + kernel timing.
    pub on: ConfigSummary,
    /// on − off (absent without off runs).
    pub cost: Option<KernelTimingCost>,
}

/// One receiver run of a pair, reduced to what [`KernelTimingRow`] needs.
struct Sample<'a> {
    throughput_ratio: f64,
    p99_ratio: Option<f64>,
    o: &'a Observed,
}

impl ConfigSummary {
    fn of(v: &[&Sample]) -> Self {
        let o = |f: fn(&Observed) -> f64| med(v, |s| f(s.o));
        Self {
            throughput_ratio: med(v, |s| s.throughput_ratio),
            p99_ratio: v
                .iter()
                .all(|s| s.p99_ratio.is_some())
                .then(|| med(v, |s| s.p99_ratio.unwrap_or(f64::NAN))),
            us_per_request: o(Observed::us_per_request),
            receiver_us_per_request: o(Observed::receiver_us_per_request),
            bpf_us_per_request: o(Observed::bpf_us_per_request),
            kt_bpf_us_per_request: o(Observed::kt_bpf_us_per_request),
            kt_programs: v.iter().map(|s| s.o.kt_programs).max().unwrap_or(0),
            server_completeness: o(Observed::server_completeness),
            client_completeness: o(Observed::client_completeness),
            kernel_lost: v.iter().map(|s| s.o.kernel_lost).sum(),
        }
    }
}

impl KernelTimingRow {
    /// `pairs`: (on, off) per pair; off is `None` when the pair had no B-off run.
    fn of(load: String, pairs: &[(Sample, Option<Sample>)]) -> Self {
        let on: Vec<&Sample> = pairs.iter().map(|p| &p.0).collect();
        let both: Vec<(&Sample, &Sample)> = pairs
            .iter()
            .filter_map(|(on, off)| Some((on, off.as_ref()?)))
            .collect();
        let diff = |f: fn(&Observed) -> f64| med(&both, |(on, off)| f(on.o) - f(off.o));
        Self {
            load,
            on: ConfigSummary::of(&on),
            off: (!both.is_empty()).then(|| {
                let off: Vec<&Sample> = both.iter().map(|p| p.1).collect();
                ConfigSummary::of(&off)
            }),
            cost: (!both.is_empty()).then(|| KernelTimingCost {
                us_per_request: diff(Observed::us_per_request),
                receiver_us_per_request: diff(Observed::receiver_us_per_request),
                bpf_us_per_request: diff(Observed::bpf_us_per_request),
                throughput_ratio: med(&both, |(on, off)| {
                    on.throughput_ratio - off.throughput_ratio
                }),
                p99_ratio: both
                    .iter()
                    .all(|(on, off)| on.p99_ratio.is_some() && off.p99_ratio.is_some())
                    .then(|| {
                        med(&both, |(on, off)| {
                            on.p99_ratio.unwrap_or(f64::NAN) - off.p99_ratio.unwrap_or(f64::NAN)
                        })
                    }),
            }),
        }
    }
}

/// One overhead target and whether this run met it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// Everything one benchmark run produced.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// UTC date and time of the run.
    pub date: String,
    pub machine: Machine,
    pub plan: Option<Plan>,
    pub syscall_tax: Option<SyscallTax>,
    pub saturation: Vec<SatPair>,
    pub fixed: Vec<FixedPair>,
    pub throughput_a_rps: f64,
    pub throughput_ratio: f64,
    pub floor_ratio: Option<f64>,
    pub sat_server_completeness: f64,
    pub sat_client_completeness: f64,
    pub sat_kernel_lost: f64,
    pub sat_us_per_span: f64,
    /// Median receiver + BPF CPU per request at saturation (µs).
    pub sat_us_per_request: f64,
    /// Median counting-sink CPU per request at saturation (µs; not part of the receiver's).
    pub sat_sink_us_per_request: f64,
    /// Median B-off throughput ÷ A (layer timing off), when the A/B ran.
    pub throughput_ratio_off: Option<f64>,
    pub rates: Vec<RateSummary>,
    pub peak_rss_bytes: u64,
    pub bpf_map_bytes: u64,
    /// HTTP/2 run (h2load at a fixed rate against nginx h2c), if made.
    pub http2: Option<ProtocolRun>,
    /// HTTPS run (wrk → nginx, both OpenSSL, traced by uprobes), if made.
    pub tls: Option<TlsRun>,
    /// Kernel timing hooks off vs on, per load (saturation first, then the fixed rates).
    pub kernel_timing: Vec<KernelTimingRow>,
    pub targets: Vec<Target>,
}

/// HTTPS through the TLS uprobes: wrk (saturation, few connections) A and B.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TlsRun {
    pub a_rps: f64,
    pub b_rps: f64,
    /// bpftrace counting on the same OpenSSL uprobes (entry and return), req/s.
    pub floor_rps: Option<f64>,
    pub run: ProtocolRun,
    /// BPF run time (socket raw tracepoints + uprobes) per request, µs.
    pub bpf_us_per_request: f64,
}

/// A B-only run of another protocol at a fixed rate: completeness and CPU per request.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProtocolRun {
    pub rate: u32,
    pub load_requests: u64,
    pub observed: Observed,
    pub server_completeness: f64,
    pub client_completeness: f64,
    pub us_per_request: f64,
}

impl ProtocolRun {
    pub fn new(rate: u32, load_requests: u64, observed: Observed) -> Self {
        Self {
            rate,
            load_requests,
            server_completeness: observed.server_completeness(),
            client_completeness: observed.client_completeness(),
            us_per_request: observed.us_per_request(),
            observed,
        }
    }
}

/// Where it ran.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

/// Median (mean of the middle two for an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn med<T>(v: &[T], f: impl Fn(&T) -> f64) -> f64 {
    median(v.iter().map(f).collect())
}

impl Report {
    /// Computes the medians and checks the targets.
    pub fn summarise(&mut self) {
        let sat = &self.saturation;
        if !sat.is_empty() {
            self.throughput_a_rps = med(sat, |p| p.a.rps);
            self.throughput_ratio = med(sat, |p| p.b.rps / p.a.rps);
            let floors: Vec<f64> = sat
                .iter()
                .filter_map(|p| Some(p.floor.as_ref()?.rps / p.a.rps))
                .collect();
            self.floor_ratio = (!floors.is_empty()).then(|| median(floors));
            self.sat_server_completeness = med(sat, |p| p.b_observed.server_completeness());
            self.sat_client_completeness = med(sat, |p| p.b_observed.client_completeness());
            self.sat_kernel_lost = sat.iter().map(|p| p.b_observed.kernel_lost).sum();
            self.sat_us_per_span = med(sat, |p| p.b_observed.us_per_span());
            self.sat_us_per_request = med(sat, |p| p.b_observed.us_per_request());
            self.sat_sink_us_per_request = med(sat, |p| p.b_observed.sink_us_per_request());
            let off: Vec<f64> = sat
                .iter()
                .filter_map(|p| Some(p.b_off.as_ref()?.0.rps / p.a.rps))
                .collect();
            self.throughput_ratio_off = (!off.is_empty()).then(|| median(off));
        }
        let mut rates: Vec<u32> = self.fixed.iter().map(|p| p.rate).collect();
        rates.dedup();
        self.rates = rates
            .into_iter()
            .map(|rate| {
                let v: Vec<&FixedPair> = self.fixed.iter().filter(|p| p.rate == rate).collect();
                let o = |f: fn(&Observed) -> f64| med(&v, |p| f(&p.b_observed));
                RateSummary {
                    rate,
                    achieved_rps_b: med(&v, |p| p.b.rps),
                    p50_ratio: med(&v, |p| p.b.p50 / p.a.p50),
                    p99_ratio: med(&v, |p| p.b.p99 / p.a.p99),
                    p999_ratio: med(&v, |p| p.b.p999 / p.a.p999),
                    p99_a_ms: med(&v, |p| p.a.p99 * 1e3),
                    p99_b_ms: med(&v, |p| p.b.p99 * 1e3),
                    server_completeness: o(Observed::server_completeness),
                    client_completeness: o(Observed::client_completeness),
                    us_per_request: o(Observed::us_per_request),
                    us_per_span: o(Observed::us_per_span),
                    bpf_us_per_request: o(|x| x.bpf_ns as f64 / x.served.max(1) as f64 / 1e3),
                    kernel_lost: v.iter().map(|p| p.b_observed.kernel_lost).sum(),
                }
            })
            .collect();
        self.kernel_timing.clear();
        if !self.saturation.is_empty() {
            let pairs: Vec<(Sample, Option<Sample>)> = self
                .saturation
                .iter()
                .map(|p| {
                    (
                        Sample {
                            throughput_ratio: p.b.rps / p.a.rps,
                            p99_ratio: None,
                            o: &p.b_observed,
                        },
                        p.b_off.as_ref().map(|(r, o)| Sample {
                            throughput_ratio: r.rps / p.a.rps,
                            p99_ratio: None,
                            o,
                        }),
                    )
                })
                .collect();
            let row = KernelTimingRow::of("saturation (wrk)".into(), &pairs);
            self.kernel_timing.push(row);
        }
        for r in &self.rates {
            let pairs: Vec<(Sample, Option<Sample>)> = self
                .fixed
                .iter()
                .filter(|p| p.rate == r.rate)
                .map(|p| {
                    (
                        Sample {
                            throughput_ratio: p.b.rps / p.a.rps,
                            p99_ratio: Some(p.b.p99 / p.a.p99),
                            o: &p.b_observed,
                        },
                        p.b_off.as_ref().map(|(f, o)| Sample {
                            throughput_ratio: f.rps / p.a.rps,
                            p99_ratio: Some(f.p99 / p.a.p99),
                            o,
                        }),
                    )
                })
                .collect();
            let row = KernelTimingRow::of(format!("fixed {} req/s (oha)", r.rate), &pairs);
            self.kernel_timing.push(row);
        }
        let all = self
            .saturation
            .iter()
            .map(|p| &p.b_observed)
            .chain(
                self.saturation
                    .iter()
                    .filter_map(|p| Some(&p.b_off.as_ref()?.1)),
            )
            .chain(self.fixed.iter().map(|p| &p.b_observed))
            .chain(self.fixed.iter().filter_map(|p| Some(&p.b_off.as_ref()?.1)));
        for o in all {
            self.peak_rss_bytes = self.peak_rss_bytes.max(o.peak_rss);
            self.bpf_map_bytes = self.bpf_map_bytes.max(o.map_bytes);
        }
        self.targets = self.check_targets();
    }

    fn check_targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let mut add = |name: &str, target: &str, measured: String, met: bool| {
            t.push(Target {
                name: name.into(),
                target: target.into(),
                measured,
                met,
            })
        };
        if !self.saturation.is_empty() {
            add(
                "saturation throughput ×A",
                "≥ 0.80",
                format!("{:.3}", self.throughput_ratio),
                self.throughput_ratio >= 0.80,
            );
            if let Some(f) = self.floor_ratio {
                let of = self.throughput_ratio / f;
                add(
                    "saturation throughput ÷ bpftrace floor",
                    "≥ 0.88 (floor: sock_send/recv_length)",
                    format!("{of:.3} (floor ×A {f:.3})"),
                    of >= 0.88,
                );
            }
            let c = self
                .sat_server_completeness
                .min(self.sat_client_completeness);
            add(
                "completeness at saturation",
                "≥ 99.9%, every loss counted",
                format!(
                    "server {:.2}%, client {:.2}%, kernel lost {}",
                    self.sat_server_completeness * 100.0,
                    self.sat_client_completeness * 100.0,
                    self.sat_kernel_lost
                ),
                c >= 0.999,
            );
            add(
                "CPU per request at saturation",
                "≤ 3 µs (receiver + BPF)",
                format!(
                    "{:.2} µs (sink {:.2} µs)",
                    self.sat_us_per_request, self.sat_sink_us_per_request
                ),
                self.sat_us_per_request <= 3.0,
            );
        }
        if let Some(r) = self.rates.iter().find(|r| r.rate == 20_000) {
            add(
                "CPU per request at 20,000 req/s",
                "≤ 3 µs (receiver + BPF)",
                format!("{:.2} µs", r.us_per_request),
                r.us_per_request <= 3.0,
            );
            add(
                "p99 latency at 20,000 req/s ×A",
                "≤ 1.25",
                format!(
                    "{:.3} ({:.3} → {:.3} ms)",
                    r.p99_ratio, r.p99_a_ms, r.p99_b_ms
                ),
                r.p99_ratio <= 1.25,
            );
            let c = r.server_completeness.min(r.client_completeness);
            add(
                "completeness at 20,000 req/s",
                "≥ 99.9%",
                format!(
                    "server {:.2}%, client {:.2}%",
                    r.server_completeness * 100.0,
                    r.client_completeness * 100.0
                ),
                c >= 0.999,
            );
        }
        if let Some(h) = &self.http2 {
            add(
                "HTTP/2 CPU per request (h2load)",
                "≤ 6 µs",
                format!("{:.2} µs", h.us_per_request),
                h.us_per_request <= 6.0,
            );
        }
        if let Some(x) = &self.tls
            && let Some(f) = x.floor_rps
        {
            let of = x.b_rps / f;
            add(
                "HTTPS throughput ÷ uprobe floor",
                "≥ 0.95",
                format!(
                    "{of:.3} (B ×A {:.3}, floor ×A {:.3})",
                    x.b_rps / x.a_rps,
                    f / x.a_rps
                ),
                of >= 0.95,
            );
        }
        add(
            "peak RSS",
            "≤ 40 MB",
            format!("{:.1} MB", self.peak_rss_bytes as f64 / 1e6),
            self.peak_rss_bytes <= 40_000_000,
        );
        if let Some(row) = self.kernel_timing.first()
            && let Some(k) = &row.cost
        {
            add(
                "layer timing added cost (saturation)",
                "≤ 0.5 µs per request",
                format!(
                    "{:+.2} µs (receiver {:+.2}, BPF {:+.2})",
                    k.us_per_request, k.receiver_us_per_request, k.bpf_us_per_request
                ),
                k.us_per_request <= 0.5,
            );
        }
        t
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "otel-ebpf-receiver overhead benchmark — {} — {} CPUs ({}) — Linux {}\n\n",
            self.date, self.machine.cpus, self.machine.cpu_model, self.machine.kernel
        );
        if !self.saturation.is_empty() {
            s += &format!(
                "saturation (wrk): A {:.0} req/s; B/A {:.3}; B-off/A {}; bpftrace floor/A {}; \
                 completeness server {:.2}% client {:.2}%; kernel lost {}; {:.2} µs/request \
                 (sink {:.2} µs/request); {:.2} µs/span\n",
                self.throughput_a_rps,
                self.throughput_ratio,
                self.throughput_ratio_off
                    .map_or("-".into(), |f| format!("{f:.3}")),
                self.floor_ratio.map_or("-".into(), |f| format!("{f:.3}")),
                self.sat_server_completeness * 100.0,
                self.sat_client_completeness * 100.0,
                self.sat_kernel_lost,
                self.sat_us_per_request,
                self.sat_sink_us_per_request,
                self.sat_us_per_span,
            );
        }
        for r in &self.rates {
            s += &format!(
                "fixed {} req/s (oha, B achieved {:.0}): p50 ×{:.3} p99 ×{:.3} ({:.3} → {:.3} ms) \
                 p99.9 ×{:.3}; completeness server {:.3}% client {:.3}%; CPU {:.2} µs/request \
                 = {:.2} µs/span (BPF {:.2} µs/request); kernel lost {}\n",
                r.rate,
                r.achieved_rps_b,
                r.p50_ratio,
                r.p99_ratio,
                r.p99_a_ms,
                r.p99_b_ms,
                r.p999_ratio,
                r.server_completeness * 100.0,
                r.client_completeness * 100.0,
                r.us_per_request,
                r.us_per_span,
                r.bpf_us_per_request,
                r.kernel_lost,
            );
        }
        if let Some(t) = &self.syscall_tax {
            s += &format!(
                "syscall tax: getppid {:.0} → {:.0} ns (×{:.2}); dd read/write 1 byte {:.0} → {:.0} ns (×{:.2})\n",
                t.getppid_ns_without,
                t.getppid_ns_with,
                t.getppid_ns_with / t.getppid_ns_without,
                t.devnull_write_ns_without,
                t.devnull_write_ns_with,
                t.devnull_write_ns_with / t.devnull_write_ns_without,
            );
        }
        if let Some(h) = &self.http2 {
            s += &format!(
                "HTTP/2 (h2load, {} req/s, {} requests): completeness server {:.2}% client {:.2}%; \
                 CPU {:.2} µs/request; kernel lost {}\n",
                h.rate,
                h.load_requests,
                h.server_completeness * 100.0,
                h.client_completeness * 100.0,
                h.us_per_request,
                h.observed.kernel_lost
            );
        }
        if let Some(t) = &self.tls {
            s += &format!(
                "HTTPS (wrk, OpenSSL both ends): A {:.0} B {:.0} uprobe floor {} req/s (×{:.3}); completeness \
                 server {:.2}% client {:.2}%; CPU {:.2} µs/request (BPF incl. uprobes {:.2} \
                 µs/request)\n",
                t.a_rps,
                t.b_rps,
                t.floor_rps.map_or("-".into(), |f| format!("{f:.0}")),
                t.b_rps / t.a_rps,
                t.run.server_completeness * 100.0,
                t.run.client_completeness * 100.0,
                t.run.us_per_request,
                t.bpf_us_per_request
            );
        }
        s += &self.kernel_timing_table();
        s += &format!(
            "peak RSS {:.1} MB; BPF maps {:.1} MB\n\n",
            self.peak_rss_bytes as f64 / 1e6,
            self.bpf_map_bytes as f64 / 1e6
        );
        s += &format!("{:<40} {:<36} {:<52} met\n", "target", "wanted", "measured");
        for t in &self.targets {
            s += &format!(
                "{:<40} {:<36} {:<52} {}\n",
                t.name,
                t.target,
                t.measured,
                if t.met { "yes" } else { "NO" }
            );
        }
        s
    }
}

impl Report {
    /// The kernel timing section of the table: one line per load and configuration, then the
    /// cost (on − off). Empty without runs.
    pub fn kernel_timing_table(&self) -> String {
        if self.kernel_timing.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "\nlayer timing (B-on = default config: capture + TCP health + sampled per-packet \
             layer timing; B-off = kernel_timing.layers: false; medians over the pairs, µs per \
             request served; 'kt' = all kernel timing programs):\n",
        );
        s += &format!(
            "{:<26} {:<8} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6} {:>5}\n",
            "load",
            "receiver",
            "thr ×A",
            "p99 ×A",
            "total µs",
            "user µs",
            "BPF µs",
            "kt BPF µs",
            "server",
            "client",
            "lost",
            "kt p"
        );
        let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.3}"));
        for row in &self.kernel_timing {
            for (name, c) in [("B-off", row.off.as_ref()), ("B-on", Some(&row.on))] {
                let Some(c) = c else { continue };
                s += &format!(
                    "{:<26} {:<8} {:>7.3} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.2}% {:>7.2}% {:>6} {:>5}\n",
                    row.load,
                    name,
                    c.throughput_ratio,
                    ratio(c.p99_ratio),
                    c.us_per_request,
                    c.receiver_us_per_request,
                    c.bpf_us_per_request,
                    c.kt_bpf_us_per_request,
                    c.server_completeness * 100.0,
                    c.client_completeness * 100.0,
                    c.kernel_lost,
                    c.kt_programs
                );
            }
            if let Some(k) = &row.cost {
                s += &format!(
                    "{:<26} {:<8} {:>+7.3} {:>7} {:>+9.2} {:>+9.2} {:>+9.2} {:>9.2}   (kernel timing cost)\n",
                    row.load,
                    "on − off",
                    k.throughput_ratio,
                    k.p99_ratio.map_or("-".to_string(), |r| format!("{r:+.3}")),
                    k.us_per_request,
                    k.receiver_us_per_request,
                    k.bpf_us_per_request,
                    row.on.kt_bpf_us_per_request,
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::{FixedRate, Saturation};

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    fn obs(served: u64, spans: u64, cpu_s: f64) -> Observed {
        Observed {
            served,
            server_spans: spans,
            client_spans: spans,
            cpu_s,
            ..Observed::default()
        }
    }

    #[test]
    fn summary_and_targets() {
        let fixed = |a99: f64, b99: f64, spans: u64| FixedPair {
            rate: 20_000,
            a: FixedRate {
                requests: 1000,
                rps: 20_000.0,
                p50: 1e-4,
                p99: a99,
                p999: 1e-3,
            },
            b: FixedRate {
                requests: 1000,
                rps: 20_000.0,
                p50: 1e-4,
                p99: b99,
                p999: 1e-3,
            },
            b_observed: obs(1000, spans, 0.002),
            b_off: None,
        };
        let mut r = Report {
            fixed: vec![fixed(1e-3, 1.05e-3, 1000), fixed(1e-3, 1.5e-3, 1000)],
            saturation: vec![SatPair {
                a: Saturation {
                    requests: 100,
                    rps: 100.0,
                },
                b: Saturation {
                    requests: 60,
                    rps: 60.0,
                },
                b_observed: obs(60, 60, 0.0),
                b_off: None,
                floor: Some(Saturation {
                    requests: 70,
                    rps: 70.0,
                }),
            }],
            ..Report::default()
        };
        r.summarise();
        assert_eq!(r.rates.len(), 1);
        assert!((r.rates[0].p99_ratio - 1.275).abs() < 1e-9);
        // 2 ms of CPU over 1000 requests = 2 µs/request = 1 µs/span.
        assert!((r.rates[0].us_per_request - 2.0).abs() < 1e-9);
        assert!((r.rates[0].us_per_span - 1.0).abs() < 1e-9);
        let met = |n: &str| {
            r.targets
                .iter()
                .find(|t| t.name.starts_with(n))
                .unwrap()
                .met
        };
        assert!(met("completeness at 20,000"));
        assert!(!met("p99 latency"));
        assert!(met("CPU per request at 20,000"));
        assert!(!met("saturation throughput ×A"));
        // 0.6 of A against a floor at 0.7 of A: 0.857 of the floor.
        assert!(!met("saturation throughput ÷ bpftrace floor"));
        assert!(r.targets.iter().all(|t| !t.name.starts_with("HTTPS")));
        assert!(r.table().contains("NO"));
        // No B-off runs: the kernel timing rows have the on side only.
        assert_eq!(r.kernel_timing.len(), 2);
        assert!(
            r.kernel_timing
                .iter()
                .all(|k| k.off.is_none() && k.cost.is_none())
        );
    }

    #[test]
    fn kernel_timing_cost() {
        let sat = |a: f64, on: f64, off: f64, on_cpu: f64, kt_ns: u64| SatPair {
            a: Saturation {
                requests: 1000,
                rps: a,
            },
            b: Saturation {
                requests: 1000,
                rps: on,
            },
            // 1000 served; on: `on_cpu` s of receiver CPU, 3 ms of BPF of which `kt_ns` hooks.
            b_observed: Observed {
                bpf_ns: 3_000_000,
                bpf_kt_ns: kt_ns,
                kt_programs: 10,
                ..obs(1000, 1000, on_cpu)
            },
            b_off: Some((
                Saturation {
                    requests: 1000,
                    rps: off,
                },
                Observed {
                    bpf_ns: 2_000_000,
                    ..obs(1000, 1000, 0.005)
                },
            )),
            floor: None,
        };
        let mut r = Report {
            saturation: vec![
                sat(100.0, 50.0, 60.0, 0.006, 500_000),
                sat(100.0, 55.0, 60.0, 0.007, 700_000),
                sat(100.0, 40.0, 60.0, 0.009, 600_000),
            ],
            ..Report::default()
        };
        r.summarise();
        let k = &r.kernel_timing[0];
        let off = k.off.as_ref().unwrap();
        let cost = k.cost.as_ref().unwrap();
        assert!((off.throughput_ratio - 0.6).abs() < 1e-9);
        assert!((k.on.throughput_ratio - 0.5).abs() < 1e-9);
        assert!((off.bpf_us_per_request - 2.0).abs() < 1e-9);
        assert_eq!(off.kt_bpf_us_per_request, 0.0);
        assert!((k.on.kt_bpf_us_per_request - 0.6).abs() < 1e-9);
        assert_eq!(k.on.kt_programs, 10);
        // Per-pair differences: throughput −0.10, −0.05, −0.20; receiver +1, +2, +4 µs.
        assert!((cost.throughput_ratio + 0.10).abs() < 1e-9);
        assert!((cost.receiver_us_per_request - 2.0).abs() < 1e-9);
        assert!((cost.bpf_us_per_request - 1.0).abs() < 1e-9);
        assert!((cost.us_per_request - 3.0).abs() < 1e-9);
        assert!(cost.p99_ratio.is_none());
        let t = r.table();
        assert!(t.contains("B-off") && t.contains("on − off"), "{t}");
    }
}
