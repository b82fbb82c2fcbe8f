//! `otel-ebpf-receiver`: command line entry point.
//!
//! `otel-ebpf-receiver [--config PATH]` runs until SIGINT/SIGTERM; `check` reports what this
//! kernel allows; `dump-events` prints decoded ring buffer records (diagnostics).
use clap::{Parser, Subcommand};
use otel_ebpf_receiver::{config::Config, pipeline, probes};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc: the hot path allocates small strings and vectors per span; glibc malloc spent a
/// third of the pipeline's time there (benches/hot_path.rs). One arena (the pipeline runs on
/// one thread) and prompt return of freed pages keep the resident set small.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc options (read by jemalloc at its first allocation; NUL-terminated).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"narenas:1,dirty_decay_ms:500,muzzy_decay_ms:0\0";

/// Returns the pages freed after start-up (BTF name tables, ~20 MB) to the kernel at once
/// instead of after the decay time (`arena.<all>.purge`, jemalloc mallctl).
fn release_free_memory() {
    const CMD: &[u8] = b"arena.4096.purge\0"; // 4096 = MALLCTL_ARENAS_ALL
    // SAFETY: a valid NUL-terminated mallctl name; no old/new values.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            CMD.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

#[derive(Parser)]
#[command(
    version,
    about = "Rebuilds HTTP exchanges of every process on this host with eBPF and exports OTLP spans and metrics"
)]
struct Cli {
    /// YAML configuration (see config/default.yaml); built-in defaults when omitted.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print what this kernel and process allow and which probes would be used.
    Check,
    /// Print every decoded ring buffer record (diagnostics; no parsing or export).
    DumpEvents {
        /// Also write each raw record as a hex line to this file (golden test input).
        #[arg(long)]
        record: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let cfg = match &cli.config {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.cmd {
        Some(Cmd::Check) => {
            let (report, ok) = probes::check::report(cfg.receiver.capture_hooks);
            print!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Some(Cmd::DumpEvents { record }) => run(pipeline::dump_events(cfg, record)),
        None => run(pipeline::run(cfg, release_free_memory)),
    }
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    // One thread for everything (ring buffer, parsing, export, telemetry): no cross-thread
    // wake-ups per span; the benchmark (integration/bench) measured this as the cheapest.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
