//! Prints what TLS discovery finds in live processes, and how long it takes.
//!
//! `cargo run --release --example tls_discover -- PID [PID...]` (root for other users'
//! processes). Per pid: the time of `candidates` (maps + DT_NEEDED) and of `discover`
//! (candidates + analysis of every file), then each file with TLS targets, its library and
//! probe counts, and each file that cannot be traced.
use std::time::Instant;

use otel_ebpf_receiver::tls::{self, elf::ProbeKind};

fn main() {
    let pids: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if pids.is_empty() {
        eprintln!("usage: tls_discover PID [PID...]");
        std::process::exit(2);
    }
    for pid in pids {
        let t = Instant::now();
        let c = tls::candidates(pid);
        let t_candidates = t.elapsed();
        let t = Instant::now();
        let d = tls::discover(pid);
        let t_discover = t.elapsed();
        let (c, d) = match (c, d) {
            (Ok(c), Ok(d)) => (c, d),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("{e}");
                continue;
            }
        };
        println!(
            "pid {pid} {}: {} candidate files, candidates {t_candidates:?}, discover {t_discover:?}",
            c.exe.display(),
            c.files.len()
        );
        for (file, analysis) in d.targets() {
            for t in &analysis.targets {
                let entries = t
                    .probes
                    .iter()
                    .filter(|p| p.kind == ProbeKind::Entry)
                    .count();
                println!(
                    "  {} ({:?}): {:?}: {entries} entry probes, {} probes",
                    file.file.path.display(),
                    file.candidate.reason,
                    t.library,
                    t.probes.len()
                );
            }
        }
        for (file, err) in d.errors() {
            println!(
                "  skip {} [{}]: {err}",
                file.file.path.display(),
                err.reason.label()
            );
        }
        for (path, why) in &c.unreachable {
            println!("  unreachable {}: {why}", path.display());
        }
    }
}
