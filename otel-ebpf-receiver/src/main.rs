//! `otel-ebpf-receiver`: command line entry point.
//!
//! `otel-ebpf-receiver [--config PATH]` runs until SIGINT/SIGTERM; `check` reports what this
//! kernel allows; `dump-events` prints decoded ring buffer records (diagnostics).
use clap::{Parser, Subcommand};
use otel_ebpf_receiver::{config::Config, pipeline, probes};
use std::path::PathBuf;
use std::process::ExitCode;

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
    DumpEvents,
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
            let (report, ok) = probes::check::report();
            print!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Some(Cmd::DumpEvents) => run(pipeline::dump_events(cfg)),
        None => run(pipeline::run(cfg)),
    }
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
