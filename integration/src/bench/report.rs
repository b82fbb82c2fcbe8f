//! Benchmark report: medians over A/B pairs, the targets, a table and JSON.
//!
//! Input: the pairs measured by the `bench` binary. Output: [`Report`] (serialised as JSON)
//! and [`Report::table`] (text). Ratios are B/A of medians' pairs: each pair's ratio first,
//! then the median of the ratios (pairs ran back to back, so drift cancels inside a pair).

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

/// One target of issue #3 and whether this run met it.
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
    pub rates: Vec<RateSummary>,
    pub peak_rss_bytes: u64,
    pub bpf_map_bytes: u64,
    /// HTTP/2 run (h2load at a fixed rate against nginx h2c), if made.
    pub http2: Option<ProtocolRun>,
    /// HTTPS run (wrk → nginx, both OpenSSL, traced by uprobes), if made.
    pub tls: Option<TlsRun>,
    pub targets: Vec<Target>,
}

/// HTTPS through the TLS uprobes: wrk (saturation, few connections) A and B.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TlsRun {
    pub a_rps: f64,
    pub b_rps: f64,
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
        let all = self
            .saturation
            .iter()
            .map(|p| &p.b_observed)
            .chain(self.fixed.iter().map(|p| &p.b_observed));
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
        if let Some(r) = self.rates.iter().find(|r| r.rate == 20_000) {
            let c = r.server_completeness.min(r.client_completeness);
            add(
                "completeness at 20,000 req/s",
                "100.00% (server and client spans)",
                format!(
                    "server {:.2}%, client {:.2}%",
                    r.server_completeness * 100.0,
                    r.client_completeness * 100.0
                ),
                c >= 0.99995 && r.kernel_lost == 0.0,
            );
            add(
                "p99 latency ratio at 20,000 req/s",
                "≤ 1.10",
                format!("{:.3}", r.p99_ratio),
                r.p99_ratio <= 1.10,
            );
            add(
                "CPU per exported span at 20,000 req/s",
                "≤ 3 µs",
                format!("{:.2} µs", r.us_per_span),
                r.us_per_span <= 3.0,
            );
        }
        if !self.saturation.is_empty() {
            add(
                "throughput ratio at saturation",
                "≥ 0.70",
                format!(
                    "{:.3} (bpftrace floor {})",
                    self.throughput_ratio,
                    self.floor_ratio.map_or("-".into(), |f| format!("{f:.3}"))
                ),
                self.throughput_ratio >= 0.70,
            );
            let c = self
                .sat_server_completeness
                .min(self.sat_client_completeness);
            add(
                "completeness at saturation",
                "≥ 99%, loss counted",
                format!(
                    "server {:.2}%, client {:.2}%, kernel lost {}",
                    self.sat_server_completeness * 100.0,
                    self.sat_client_completeness * 100.0,
                    self.sat_kernel_lost
                ),
                c >= 0.99,
            );
        }
        add(
            "peak RSS",
            "≤ 50 MB",
            format!("{:.1} MB", self.peak_rss_bytes as f64 / 1e6),
            self.peak_rss_bytes <= 50_000_000,
        );
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
                "saturation (wrk): A {:.0} req/s; B/A {:.3}; bpftrace floor/A {}; \
                 completeness server {:.2}% client {:.2}%; kernel lost {}; {:.2} µs/span\n",
                self.throughput_a_rps,
                self.throughput_ratio,
                self.floor_ratio.map_or("-".into(), |f| format!("{f:.3}")),
                self.sat_server_completeness * 100.0,
                self.sat_client_completeness * 100.0,
                self.sat_kernel_lost,
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
                "HTTPS (wrk, OpenSSL both ends): A {:.0} B {:.0} req/s (×{:.3}); completeness \
                 server {:.2}% client {:.2}%; CPU {:.2} µs/request (BPF incl. uprobes {:.2} \
                 µs/request)\n",
                t.a_rps,
                t.b_rps,
                t.b_rps / t.a_rps,
                t.run.server_completeness * 100.0,
                t.run.client_completeness * 100.0,
                t.run.us_per_request,
                t.bpf_us_per_request
            );
        }
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
                floor: None,
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
        assert!(met("CPU per exported span"));
        assert!(!met("throughput ratio"));
        assert!(r.table().contains("NO"));
    }
}
