//! `bench`: the overhead benchmark (see docs/overhead.md).
//!
//! Runs nginx (one worker on CPU 1) + wrk (`-t1 -c16`) / oha on CPU 0 alternately without (A)
//! and with the release receiver, in its default config (B: capture + TCP health + sampled
//! layer timing) and without layer timing (B-off, `layers: false`), the bpftrace floor
//! (counting on `sock_send_length` + `sock_recv_length`), HTTP/2, HTTPS with its uprobe floor
//! and the syscall tax, then prints every target as met / not met and writes JSON. The
//! receiver exports OTLP/HTTP to a sink that walks the protobuf wire format; its CPU is
//! printed too. `--smoke` is the CI version: one B run (default config) at a low fixed rate,
//! failing below 99% completeness. Root only.

use anyhow::{Result, bail};
use clap::Parser;
use otel_ebpf_integration::bench::{
    self, Attached, FixedPair, Floor, Observed, Plan, SatPair, load,
    nginx::Nginx,
    procstat,
    report::{Machine, Report, SyscallTax},
    syscall,
};

#[derive(Parser, Debug)]
#[command(about = "Overhead benchmark: nginx + wrk/oha with and without the receiver")]
struct Args {
    /// A/B pairs (medians are reported).
    #[arg(long, default_value_t = 3)]
    pairs: u32,
    /// Seconds per saturation (wrk) run.
    #[arg(long, default_value_t = 10)]
    sat_secs: u32,
    /// Seconds per fixed-rate (oha) run.
    #[arg(long, default_value_t = 10)]
    fixed_secs: u32,
    /// Fixed rates in req/s, comma-separated; 0 = half of A's median saturation throughput.
    #[arg(long, value_delimiter = ',', default_values_t = vec![20_000, 0])]
    rates: Vec<u32>,
    /// wrk connections (one wrk thread).
    #[arg(long, default_value_t = 16)]
    sat_conns: u32,
    /// oha connections.
    #[arg(long, default_value_t = 50)]
    fixed_conns: u32,
    /// Skip the bpftrace floor runs.
    #[arg(long)]
    no_floor: bool,
    /// Skip the syscall tax measurement.
    #[arg(long)]
    no_syscall_tax: bool,
    /// Extra `receiver:` lines for the receiver config (e.g. "  capture_bytes: 512"); no
    /// `kernel_timing` section unless with `--no-kernel-timing-ab`.
    #[arg(long, default_value = "")]
    receiver_yaml: String,
    /// Skip the runs without layer timing (B-off): B runs only with the config as given
    /// (the default: sampled layer timing on). Quicker.
    #[arg(long)]
    no_kernel_timing_ab: bool,
    /// `receiver.kernel_timing.sampling` of the B runs as a YAML flow mapping, e.g.
    /// `{window_seconds: 1, period_seconds: 1}` (hooks always attached: the cost inside a
    /// sampling window). Empty: the default sampling.
    #[arg(long, default_value = "")]
    layers_sampling: String,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-report.json")]
    json: std::path::PathBuf,
    /// CI smoke test: one B run at `--smoke-rate` for `--fixed-secs`; exit 1 below 99%.
    #[arg(long)]
    smoke: bool,
    /// Rate of the smoke run (req/s).
    #[arg(long, default_value_t = 2000)]
    smoke_rate: u32,
    /// HTTP/2 run: h2load at this rate (req/s) against nginx h2c with the receiver attached;
    /// 0 skips it.
    #[arg(long, default_value_t = 5000)]
    h2_rate: u32,
    /// Skip the HTTPS run (wrk → nginx over TLS, A and B).
    #[arg(long)]
    no_tls: bool,
    /// Soak: one B run at the first rate for this many seconds, sampling RSS every 10 s.
    #[arg(long)]
    soak_secs: Option<u32>,
}

/// nginx's one worker.
const SERVER_CPU: usize = 1;
/// wrk / oha / h2load.
const CLIENT_CPU: usize = 0;

fn main() -> Result<()> {
    let args = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads eBPF probes and reads bpf_stats: run it as root");
    }
    let old_stats = procstat::enable_bpf_stats()?;
    let r = if args.smoke {
        smoke(&args)
    } else if let Some(secs) = args.soak_secs {
        soak(&args, secs)
    } else {
        full(&args)
    };
    procstat::restore_bpf_stats(&old_stats);
    r
}

fn url(n: &Nginx) -> String {
    format!("http://127.0.0.1:{}/index.html", n.port)
}

fn smoke(args: &Args) -> Result<()> {
    let nginx = Nginx::start(SERVER_CPU)?;
    let att = Attached::start(nginx.port, &args.receiver_yaml);
    let (fr, o) = att.measure(&nginx, || {
        load::oha(
            &url(&nginx),
            CLIENT_CPU,
            args.smoke_rate,
            8,
            args.fixed_secs,
        )
    })?;
    println!(
        "smoke: {} req/s for {} s: {} served, {} SERVER spans ({:.2}%), {} CLIENT spans ({:.2}%), \
         kernel lost {}, {:.2} µs CPU/span (receiver {:.3} s, BPF {:.3} s over {} runs), p99 {:.3} ms; \
         kernel timing BPF {:.3} µs/request ({} programs, {} runs; all BPF {:.3} µs/request); \
         sink {:.3} µs/request",
        args.smoke_rate,
        args.fixed_secs,
        o.served,
        o.server_spans,
        o.server_completeness() * 100.0,
        o.client_spans,
        o.client_completeness() * 100.0,
        o.kernel_lost,
        o.us_per_span(),
        o.cpu_s,
        o.bpf_ns as f64 / 1e9,
        o.bpf_runs,
        fr.p99 * 1e3,
        o.kt_bpf_us_per_request(),
        o.kt_programs,
        o.bpf_kt_runs,
        o.bpf_us_per_request(),
        o.sink_us_per_request(),
    );
    for (name, p) in &o.bpf_by_program {
        println!(
            "  BPF {name:<16} {:>6.2} runs/request {:>6.0} ns/run {:>6.2} µs/request{}",
            p.run_cnt as f64 / o.served.max(1) as f64,
            p.run_time_ns as f64 / p.run_cnt.max(1) as f64,
            p.run_time_ns as f64 / o.served.max(1) as f64 / 1e3,
            if procstat::is_kernel_timing(name) {
                " (kernel timing)"
            } else {
                ""
            }
        );
    }
    if o.served == 0 || o.server_completeness() < 0.99 || o.client_completeness() < 0.99 {
        bail!("smoke: completeness below 99%");
    }
    Ok(())
}

fn soak(args: &Args, secs: u32) -> Result<()> {
    let nginx = Nginx::start(SERVER_CPU)?;
    let att = Attached::start(nginx.port, &args.receiver_yaml);
    let rate = args
        .rates
        .first()
        .copied()
        .filter(|r| *r > 0)
        .unwrap_or(20_000);
    let pid = att.receiver.pid();
    let u = url(&nginx);
    let conns = args.fixed_conns;
    let h = std::thread::spawn(move || load::oha(&u, CLIENT_CPU, rate, conns, secs));
    let mut samples = Vec::new();
    for i in 0..=secs / 10 {
        let rss = procstat::status_bytes(pid, "VmRSS")?;
        println!("soak t={:>4}s RSS {:.1} MB", i * 10, rss as f64 / 1e6);
        samples.push((i * 10, rss));
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
    let fr = h.join().expect("oha thread")?;
    let hwm = procstat::status_bytes(pid, "VmHWM")?;
    let warm = samples.iter().find(|(t, _)| *t >= 60).map_or(0, |s| s.1);
    let end = samples.last().map_or(0, |s| s.1);
    println!(
        "soak: {rate} req/s for {secs} s ({} requests): RSS after warm-up (60 s) {:.1} MB, at end {:.1} MB, peak {:.1} MB",
        fr.requests,
        warm as f64 / 1e6,
        end as f64 / 1e6,
        hwm as f64 / 1e6
    );
    std::fs::write(
        &args.json,
        serde_json::to_string_pretty(&serde_json::json!({
            "rate": rate, "secs": secs, "requests": fr.requests,
            "rss_samples": samples, "peak_rss": hwm,
        }))?,
    )?;
    Ok(())
}

fn full(args: &Args) -> Result<()> {
    let mut rep = Report {
        date: now_utc(),
        machine: Machine::this(),
        ..Report::default()
    };
    let plan = Plan {
        pairs: args.pairs,
        sat_secs: args.sat_secs,
        fixed_secs: args.fixed_secs,
        rates: args.rates.clone(),
        sat_conns: args.sat_conns,
        fixed_conns: args.fixed_conns,
        server_cpu: SERVER_CPU,
        client_cpu: CLIENT_CPU,
        floor: !args.no_floor,
        syscall_tax: !args.no_syscall_tax,
        receiver_yaml: args.receiver_yaml.clone(),
        kernel_timing_ab: !args.no_kernel_timing_ab,
        layers_sampling: args.layers_sampling.clone(),
    };
    if plan.kernel_timing_ab && args.receiver_yaml.contains("kernel_timing") {
        bail!("--receiver-yaml sets kernel_timing: add --no-kernel-timing-ab (the A/B sets it)");
    }
    let nginx = Nginx::start(SERVER_CPU)?;
    let u = url(&nginx);
    if plan.syscall_tax {
        let loops = 2_000_000;
        let without = (
            syscall::getppid_ns(loops)?,
            syscall::devnull_write_ns(loops)?,
        );
        let att = Attached::start(nginx.port, &args.receiver_yaml);
        let with = (
            syscall::getppid_ns(loops)?,
            syscall::devnull_write_ns(loops)?,
        );
        drop(att);
        rep.syscall_tax = Some(SyscallTax {
            getppid_ns_without: without.0,
            getppid_ns_with: with.0,
            devnull_write_ns_without: without.1,
            devnull_write_ns_with: with.1,
        });
        eprintln!("syscall tax: {:?}", rep.syscall_tax);
    }
    for i in 0..plan.pairs {
        let a = load::wrk(&u, CLIENT_CPU, plan.sat_conns, plan.sat_secs)?;
        bench::pause();
        let ((b, o), b_off) = b_runs(&nginx, &plan, i, || {
            load::wrk(&u, CLIENT_CPU, plan.sat_conns, plan.sat_secs)
        })?;
        let floor = if plan.floor {
            let f = Floor::start(bench::SOCK_FLOOR)?;
            let r = load::wrk(&u, CLIENT_CPU, plan.sat_conns, plan.sat_secs)?;
            drop(f);
            bench::pause();
            Some(r)
        } else {
            None
        };
        eprintln!(
            "pair {i} saturation: A {:.0} B {:.0} B-off {:?} floor {:?} req/s; B spans {}/{} of {} served; \
             lost {}; kernel timing BPF {:.2} µs/request; receiver+BPF {:.2} µs/request, sink {:.2}",
            a.rps,
            b.rps,
            b_off.as_ref().map(|f| f.0.rps as u64),
            floor.as_ref().map(|f| f.rps as u64),
            o.server_spans,
            o.client_spans,
            o.served,
            o.kernel_lost,
            o.kt_bpf_us_per_request(),
            o.us_per_request(),
            o.sink_us_per_request()
        );
        rep.saturation.push(SatPair {
            a,
            b,
            b_observed: o,
            b_off,
            floor,
        });
    }
    let half =
        (bench::report::median(rep.saturation.iter().map(|p| p.a.rps).collect()) / 2.0 / 1000.0)
            .round() as u32
            * 1000;
    let rates: Vec<u32> = plan
        .rates
        .iter()
        .map(|&r| if r == 0 { half.max(1000) } else { r })
        .collect();
    for &rate in &rates {
        for i in 0..plan.pairs {
            let a = load::oha(&u, CLIENT_CPU, rate, plan.fixed_conns, plan.fixed_secs)?;
            bench::pause();
            let ((b, o), b_off) = b_runs(&nginx, &plan, i, || {
                load::oha(&u, CLIENT_CPU, rate, plan.fixed_conns, plan.fixed_secs)
            })?;
            eprintln!(
                "pair {i} fixed {rate}: p99 A {:.3} B {:.3} B-off {} ms; spans {}/{} of {}; {:.2} µs/span; \
                 kernel timing BPF {:.2} µs/request",
                a.p99 * 1e3,
                b.p99 * 1e3,
                b_off
                    .as_ref()
                    .map_or("-".into(), |f| format!("{:.3}", f.0.p99 * 1e3)),
                o.server_spans,
                o.client_spans,
                o.served,
                o.us_per_span(),
                o.kt_bpf_us_per_request()
            );
            rep.fixed.push(FixedPair {
                rate,
                a,
                b,
                b_observed: o,
                b_off,
            });
        }
    }
    if args.h2_rate > 0 {
        let h2url = format!("http://127.0.0.1:{}/index.html", nginx.h2_port);
        let att = Attached::start_ports(&[nginx.h2_port], nginx.h2_port, &args.receiver_yaml);
        let (n, o) = att.measure(&nginx, || {
            load::h2load(&h2url, CLIENT_CPU, args.h2_rate, 10, plan.fixed_secs)
        })?;
        drop(att);
        eprintln!(
            "http2 {}: spans {}/{} of {}; {:.2} µs/request",
            args.h2_rate,
            o.server_spans,
            o.client_spans,
            o.served,
            o.us_per_request()
        );
        rep.http2 = Some(bench::report::ProtocolRun::new(args.h2_rate, n, o));
    }
    if !args.no_tls {
        let tls_url = format!("https://127.0.0.1:{}/index.html", nginx.tls_port);
        let a = load::wrk(&tls_url, CLIENT_CPU, 10, plan.sat_secs)?;
        bench::pause();
        let floor_rps = match (plan.floor, bench::libssl_of("nginx")) {
            (true, Some(lib)) => {
                let f = Floor::start(&bench::tls_floor(&lib))?;
                let r = load::wrk(&tls_url, CLIENT_CPU, 10, plan.sat_secs)?;
                drop(f);
                bench::pause();
                Some(r.rps)
            }
            _ => None,
        };
        let att = Attached::start_ports(&[nginx.tls_port], nginx.tls_port, &args.receiver_yaml);
        let (b, o) = att.measure(&nginx, || {
            load::wrk(&tls_url, CLIENT_CPU, 10, plan.sat_secs)
        })?;
        drop(att);
        eprintln!(
            "https: A {:.0} B {:.0} floor {:?} req/s; spans {}/{} of {}; {:.2} µs/request",
            a.rps,
            b.rps,
            floor_rps,
            o.server_spans,
            o.client_spans,
            o.served,
            o.us_per_request()
        );
        rep.tls = Some(bench::report::TlsRun {
            a_rps: a.rps,
            b_rps: b.rps,
            floor_rps,
            bpf_us_per_request: o.bpf_ns as f64 / o.served.max(1) as f64 / 1e3,
            run: bench::report::ProtocolRun::new(0, b.requests, o),
        });
    }
    rep.plan = Some(plan);
    rep.summarise();
    print!("{}", rep.table());
    std::fs::write(&args.json, serde_json::to_string_pretty(&rep)?)?;
    eprintln!("JSON report: {}", args.json.display());
    Ok(())
}

/// The receiver runs of pair `i`: B (the default config: sampled layer timing on, or the
/// config as given without the A/B) and, with the A/B, B-off (`layers: false`) — off first in
/// even pairs, on first in odd ones, so drift does not always favour one. Each starts its own receiver; `load` runs once
/// per configuration.
#[allow(clippy::type_complexity)]
fn b_runs<T>(
    nginx: &Nginx,
    plan: &Plan,
    i: u32,
    load: impl Fn() -> Result<T>,
) -> Result<((T, Observed), Option<(T, Observed)>)> {
    let order: &[bool] = match (plan.kernel_timing_ab, i % 2) {
        (false, _) => &[true],
        (true, 0) => &[false, true],
        (true, _) => &[true, false],
    };
    let (mut on_run, mut off_run) = (None, None);
    for &on in order {
        let yaml = if plan.kernel_timing_ab {
            bench::with_kernel_timing(&plan.receiver_yaml, on, &plan.layers_sampling)
        } else {
            plan.receiver_yaml.clone()
        };
        let att = Attached::start(nginx.port, &yaml);
        let r = att.measure(nginx, &load)?;
        drop(att);
        bench::pause();
        if on && plan.kernel_timing_ab && r.1.kt_programs == 0 {
            eprintln!("warning: kernel timing on but no kernel timing program found (kernel?)");
        }
        if on {
            on_run = Some(r);
        } else {
            off_run = Some(r);
        }
    }
    Ok((on_run.expect("B ran"), off_run))
}

/// UTC time of the run, RFC 3339 to the second.
fn now_utc() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
