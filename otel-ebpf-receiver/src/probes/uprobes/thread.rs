//! The attacher thread: runs [`TlsAttacher`] on its own thread, stops on request without
//! working off its backlog, and turns panics into counted skips (per file analysis, per
//! command) or, when the thread still dies, into [`TlsStats::failure`] (health 503).
//!
//! Stage: beside **probes** (see the parent module). Input: [`TlsCmd`]s, a stop flag.
//! Output: attachments (through [`TlsAttacher`]), [`TlsStats`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use aya::Ebpf;

use super::{TlsAttacher, TlsCmd, TlsOptions, TlsStats};
use crate::tls;
use crate::tls::registry::ProcessFile;

/// The text of a panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// [`tls::elf::analyze_process_file`] with a panic (a parser bug hit by a hostile file) turned
/// into a skip labelled `analysis_panic`, so one file cannot take the attacher, and with it
/// every probe, down.
pub fn analyze_guarded(f: &ProcessFile) -> Result<tls::elf::FileAnalysis, tls::elf::AnalyzeError> {
    catch_analysis(f, tls::elf::analyze_process_file)
}

/// Runs `analyze` on `f`, turning a panic into [`tls::elf::AnalyzeReason::Panicked`].
pub(super) fn catch_analysis(
    f: &ProcessFile,
    analyze: impl FnOnce(&ProcessFile) -> Result<tls::elf::FileAnalysis, tls::elf::AnalyzeError>,
) -> Result<tls::elf::FileAnalysis, tls::elf::AnalyzeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyze(f))).unwrap_or_else(|p| {
        Err(tls::elf::AnalyzeError {
            path: f.path.clone(),
            reason: tls::elf::AnalyzeReason::Panicked(panic_message(&*p)),
        })
    })
}

/// Runs the attacher on its own thread: pins the system libraries, scans running processes,
/// signals `started`, then handles commands until the sender is dropped or `stop` is set (the
/// commands still queued are then dropped, not worked off: shutdown must not wait for a
/// backlog of scans); the object (every probe, raw tracepoints included) is detached when the
/// thread ends. With `enabled` false (uprobe programs not loaded) it only keeps the object
/// until then. A panic while handling one command is caught and counted
/// (`otel_ebpf_tls_skipped_total{reason="attacher_panic"}`), the probes stay; a panic that
/// still ends the thread sets [`TlsStats::failure`] (health 503).
pub fn spawn(
    ebpf: Ebpf,
    enabled: bool,
    stats: Arc<TlsStats>,
    rx: Receiver<TlsCmd>,
    started: Sender<()>,
    stop: Arc<AtomicBool>,
    opts: TlsOptions,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tls-attach".into())
        .spawn(move || {
            let st = stats.clone();
            let body = std::panic::AssertUnwindSafe(move || {
                attacher_loop(ebpf, enabled, stats, rx, started, stop, opts)
            });
            if let Err(p) = std::panic::catch_unwind(body) {
                st.set_failure(&format!(
                    "TLS attacher thread panicked: {}",
                    panic_message(&*p)
                ));
            }
        })
}

fn attacher_loop(
    ebpf: Ebpf,
    enabled: bool,
    stats: Arc<TlsStats>,
    rx: Receiver<TlsCmd>,
    started: Sender<()>,
    stop: Arc<AtomicBool>,
    opts: TlsOptions,
) {
    let mut a = TlsAttacher::new(ebpf, stats.clone(), opts);
    if !enabled {
        let _ = started.send(());
        while rx.recv().is_ok() && !stop.load(Ordering::Acquire) {}
        return;
    }
    let t = Instant::now();
    let pinned = a.pin_system_libraries();
    let scanned = a.scan_all(&stop);
    log::info!(
        "tls: {} system libraries pinned ({}), {scanned} more files attached from running processes, {} ms",
        pinned.len(),
        pinned
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        t.elapsed().as_millis()
    );
    let _ = started.send(());
    while let Ok(cmd) = rx.recv() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.handle(cmd)));
        if let Err(p) = handled {
            log::error!("tls: {cmd:?} panicked: {}", panic_message(&*p));
            stats.skip("attacher_panic", Path::new("other"));
        }
    }
    log::debug!("tls: {} files attached at stop", a.attached());
}
