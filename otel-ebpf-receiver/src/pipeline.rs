//! Wiring: ring buffer → decode → conn → span → enrich → export, plus self-telemetry.
//!
//! Input: a validated [`Config`]. Output: spans and metrics through the exporter until
//! SIGINT/SIGTERM, then a flush and a clean detach. Process events (exec, fork, exit) and
//! dlopen hints go to the TLS attacher thread ([`crate::probes::uprobes`]), which owns the
//! BPF object after start-up; the process resource is read at exec, so a process that exits
//! right after its request keeps its name. [`Processor`] is the IO-free part
//! (records → spans) shared with the golden tests.

use crate::clock::Clock;
use crate::config::Config;
use crate::config::TracesConfig;
use crate::conn::{ConnLimits, ConnTracker};
use crate::enrich::{self, Enricher};
use crate::events::{self, Event};
use crate::export::{ExportSettings, Exporter};
use crate::filter::Filter;
use crate::hash::{HashMap, HashMapExt, HashSet, HashSetExt};
use crate::kernel::anomaly::AnomalyDetector;
use crate::kernel::{self, metrics::KernelMetrics, spans::SpanTiming};
use crate::metrics::HttpMetrics;
use crate::metrics::graph::ServiceGraph;
use crate::probes::uprobes::{self, RESCAN_INTERVAL, TlsCmd};
use crate::probes::{KernelCounters, KernelFilters, LoadOptions, Probes};
use crate::protocol::detect;
use crate::protocol::{HttpExchange, Side};
use crate::span::link::{LinkConfig, Linker};
use crate::span::route::RouteTable;
use crate::span::sampling::{SampleInput, Sampler};
use crate::span::threads::Threads;
use crate::span::{SpanOptions, SpanRecord, build_span};
use crate::telemetry::{self, SelfMetrics};
use anyhow::Context as _;
use otel_ebpf_common::Counter;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

/// How often the ring buffer is drained when the probes did not wake us: they wake the
/// consumer only once `probes::wakeup_bytes` are waiting (wake-up batching), so at low rates
/// records wait at most this long.
pub const RING_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Records handled per turn of the main loop: under load the ring buffer never empties, so
/// after this many the loop yields (signals, timers and the export tasks on the same thread
/// get their turn).
pub const RING_BATCH: usize = 4096;
/// Whole shutdown after SIGINT/SIGTERM (drain, flush, detach), whatever the backend does.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(4);
/// Part of [`SHUTDOWN_BUDGET`] spent draining the ring buffer (it refills under load).
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(500);
/// Grace the exporter gets after its flush deadline (see [`Exporter::shutdown_within`]).
const EXPORT_GRACE: Duration = Duration::from_secs(1);

/// Records → exchanges → spans (with their kernel time per layer), without IO.
pub struct Processor {
    pub tracker: ConnTracker,
    pub clock: Clock,
    opts: SpanOptions,
    exchanges: Vec<HttpExchange>,
    /// Kernel time per connection, taken by the next span on it.
    pub timing: SpanTiming,
    /// Which request each thread is serving (in-process causality).
    threads: Threads,
}

impl Processor {
    pub fn new(cfg: &Config, clock: Clock) -> Self {
        let limits = ConnLimits {
            request_timeout_ns: (cfg.receiver.request_timeout_seconds * 1e9) as u64,
            ..ConnLimits::default()
        };
        Self {
            tracker: ConnTracker::new(limits),
            clock,
            opts: SpanOptions {
                capture_url_query: cfg.receiver.capture_url_query,
            },
            exchanges: Vec::new(),
            timing: SpanTiming::default(),
            threads: Threads::default(),
        }
    }

    /// Feeds one decoded event; spans of completed exchanges are appended to `out`.
    pub fn on_event(&mut self, ev: Event, out: &mut Vec<SpanRecord>) {
        let closed = match &ev {
            Event::Net(s) => {
                self.timing.record(s);
                return;
            }
            Event::Data(d) => {
                self.threads.on_data(d);
                None
            }
            Event::Close { conn_id, .. } => Some(*conn_id),
            _ => None,
        };
        let exited = match &ev {
            Event::ProcessExit { pid, .. } => Some(*pid),
            _ => None,
        };
        self.tracker.on_event(ev, &mut self.exchanges);
        self.drain(out);
        if let Some(pid) = exited {
            self.threads.forget_pid(pid);
        }
        if let Some(id) = closed {
            self.timing.forget(id);
        }
    }

    /// Closes out requests older than the timeout at `now_ns` (CLOCK_MONOTONIC).
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<SpanRecord>) {
        self.tracker.expire(now_ns, &mut self.exchanges);
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<SpanRecord>) {
        for ex in self.exchanges.drain(..) {
            let sock = self.tracker.socket_of(ex.pid, ex.conn_id);
            let cause = (ex.side == Side::Client)
                .then(|| {
                    self.threads
                        .cause_of(ex.pid, ex.conn_id, ex.start_ns, ex.end_ns)
                })
                .flatten();
            let mut span = build_span(ex, &self.clock, &self.opts);
            span.timing = self.timing.take(sock);
            span.cause_conn = cause;
            out.push(span);
        }
    }
}

fn load(cfg: &Config) -> anyhow::Result<Probes> {
    Ok(Probes::load(LoadOptions {
        capture_bytes: cfg.receiver.capture_bytes,
        ring_buffer_bytes: cfg.receiver.ring_buffer_bytes,
        filters: KernelFilters::from_config(&cfg.receiver.filters),
        net_timing: cfg.receiver.kernel_timing.enabled,
        net_layers: cfg.receiver.kernel_timing.enabled && cfg.receiver.kernel_timing.layers,
        capture_hooks: cfg.receiver.capture_hooks,
        sampling: cfg.receiver.kernel_timing.sampling.clone(),
    })?)
}

fn ring_fd(probes: &mut Probes) -> anyhow::Result<AsyncFd<aya::maps::RingBuf<aya::maps::MapData>>> {
    let ring = probes.take_ring()?;
    // SAFETY: the RingBuf owns its fd and lives inside the AsyncFd until it is dropped.
    unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("ring buffer fd")
}

/// Prints every decoded record until SIGINT/SIGTERM (diagnostics). With `record`, also writes
/// each raw record as one hex line (the golden tests' input format).
pub async fn dump_events(cfg: Config, record: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut probes = load(&cfg)?;
    let mut ring = ring_fd(&mut probes)?;
    let counters = probes.take_counters()?;
    let mut file = match record {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(&p).with_context(|| p.display().to_string())?,
        )),
        None => None,
    };
    // Registered once: a future made per loop turn (tokio::signal::ctrl_c()) misses a signal
    // that arrives while the loop is busy between two turns.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    log::info!("attached {}", probes.attached.join(", "));
    // TLS uprobes follow processes here too, so TLS plaintext can be inspected and recorded.
    let enabled = probes.tls_unavailable.is_none();
    let (tx, rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let stats = Arc::new(uprobes::TlsStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let layer_thread = match probes.layers.take() {
        Some(s) => Some(s.spawn(stop.clone())?),
        None => None,
    };
    let worker = uprobes::spawn(
        probes.into_ebpf(),
        enabled,
        stats,
        rx,
        started_tx,
        stop.clone(),
        uprobes::TlsOptions::default(),
    )?;
    let _ = started_rx.recv_timeout(Duration::from_secs(60));
    log::info!("TLS attacher started (enabled: {enabled})");
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                while let Some(item) = rb.next() {
                    if let Some(f) = file.as_mut() {
                        let hex: String = item.iter().map(|b| format!("{b:02x}")).collect();
                        writeln!(f, "{hex}")?;
                    }
                    let decoded = events::decode(&item);
                    match &decoded {
                        Ok(Event::ProcessExec { pid, ts_ns }) => {
                            let _ = tx.send(TlsCmd::Exec { pid: *pid, ts_ns: *ts_ns });
                        }
                        Ok(Event::ProcessFork { parent, child, .. }) => {
                            let _ = tx.send(TlsCmd::Fork { parent: *parent, child: *child });
                        }
                        Ok(Event::ProcessExit { pid, .. }) => {
                            let _ = tx.send(TlsCmd::Exit { pid: *pid });
                        }
                        _ => {}
                    }
                    match decoded {
                        Ok(Event::Data(d)) if d.tls.is_some() => println!(
                            "TLS pid={} conn={} {:?} {:?} {:?} total={} tuple={:?} {:?}",
                            d.pid, d.conn_id, d.tls, d.direction, d.role, d.total_len, d.tuple,
                            String::from_utf8_lossy(&d.payload[..d.payload.len().min(60)])
                        ),
                        Ok(Event::Data(d)) => println!(
                            "DATA pid={} fd={} conn={} {:?} {:?} {:?} total={} tuple={:?} {:?}",
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
    if let Some(mut f) = file {
        f.flush()?;
    }
    println!("kernel counters: {:?}", counters.read());
    drop(ring);
    stop.store(true, Ordering::Release);
    drop(tx);
    let _ = worker.join();
    if let Some(t) = layer_thread {
        let _ = t.join();
    }
    Ok(())
}

fn parse_addr(s: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if s.is_empty() {
        Ok(None)
    } else {
        Ok(Some(s.parse().with_context(|| format!("address {s}"))?))
    }
}

/// Per-run state of the runtime loop around the [`Processor`].
struct Runtime {
    proc: Processor,
    enricher: Enricher,
    filter: Filter,
    metrics: Arc<Mutex<HttpMetrics>>,
    /// Kernel network timing / TCP health metrics.
    kmetrics: Arc<Mutex<KernelMetrics>>,
    /// TCP anomaly detection (resets, connect failures, peer spikes).
    detector: Arc<Mutex<AnomalyDetector>>,
    exporter: Exporter,
    me: Arc<SelfMetrics>,
    spans: Vec<SpanRecord>,
    /// The trace join buffer (connected traces, service-graph edges).
    linker: Linker,
    /// Spans whose trace is known, waiting to be exported.
    released: Vec<(Arc<crate::enrich::ProcessResource>, SpanRecord)>,
    /// Service-graph metrics.
    graph: Arc<Mutex<ServiceGraph>>,
    /// `receiver.traces` (peer names).
    traces: TracesConfig,
    /// Route derivation (span names, route attributes, metrics per route).
    routes: RouteTable,
    /// Span sampling (after the metrics).
    sampler: Sampler,
    /// Commands for the TLS attacher (None: TLS capture off).
    tls: Option<mpsc::Sender<TlsCmd>>,
    /// The exec gate (None: off).
    gate: Option<mpsc::Sender<uprobes::gate::GateMsg>>,
    /// Processes that produced TLS plaintext (no dlopen rescan for them).
    tls_pids: HashSet<u32>,
    /// Last dlopen rescan per process.
    rescans: HashMap<u32, Instant>,
}

/// Most processes remembered in [`Runtime`]'s `tls_pids` / `rescans` (cleared when full).
const MAX_TLS_PIDS: usize = 65_536;

impl Runtime {
    fn on_record(&mut self, rec: &[u8]) {
        SelfMetrics::add(&self.me.events_read, 1);
        let ev = match events::decode(rec) {
            Ok(ev) => ev,
            Err(e) => {
                SelfMetrics::add(&self.me.decode_errors, 1);
                log::debug!("undecodable record: {e}");
                return;
            }
        };
        let exited = match &ev {
            // Read /proc while the process is alive (it may exit right after its request).
            Event::Data(d) => {
                self.enricher.resource(d.pid);
                if d.tls.is_some() {
                    if self.tls_pids.len() >= MAX_TLS_PIDS {
                        self.tls_pids.clear();
                    }
                    self.tls_pids.insert(d.pid);
                } else if detect::is_tls_record(&d.payload) && !self.tls_pids.contains(&d.pid) {
                    self.rescan(d.pid);
                }
                None
            }
            Event::ProcessExec { pid, ts_ns } => {
                // First the gate (holds a never-seen executable until its probes exist), and
                // the attacher; then the rest.
                if let Some(g) = &self.gate {
                    let _ = g.send(uprobes::gate::GateMsg::Exec {
                        pid: *pid,
                        ts_ns: *ts_ns,
                    });
                }
                self.send(TlsCmd::Exec {
                    pid: *pid,
                    ts_ns: *ts_ns,
                });
                // A new image: new name, command line; read them now, while it runs.
                self.enricher.forget(*pid);
                self.enricher.resource(*pid);
                None
            }
            Event::ProcessFork { parent, child, .. } => {
                self.send(TlsCmd::Fork {
                    parent: *parent,
                    child: *child,
                });
                None
            }
            Event::Net(n) => {
                let res = self.enricher.resource(n.pid);
                if self.filter.allows_process(n.pid, &res.executable_name) || n.pid == 0 {
                    if let Ok(mut m) = self.kmetrics.lock() {
                        m.record(&res, n, self.proc.clock.to_unix_nanos(n.ts_ns));
                    }
                    if let Some(sig) = kernel::tcp_signal(n)
                        && let Ok(mut d) = self.detector.lock()
                    {
                        d.observe(n.ts_ns, &sig);
                    }
                }
                None
            }
            Event::ProcessExit { pid, .. } => {
                self.send(TlsCmd::Exit { pid: *pid });
                self.tls_pids.remove(pid);
                self.rescans.remove(pid);
                if let Ok(mut m) = self.kmetrics.lock() {
                    m.process_exited(*pid);
                }
                if let Ok(mut m) = self.metrics.lock() {
                    m.process_exited(*pid);
                }
                Some(*pid)
            }
            _ => None,
        };
        self.proc.on_event(ev, &mut self.spans);
        self.emit();
        if let Some(pid) = exited {
            self.enricher.forget(pid);
        }
    }

    fn send(&self, cmd: TlsCmd) {
        if let Some(tx) = &self.tls {
            let _ = tx.send(cmd);
        }
    }

    /// A process that never produced TLS plaintext moved a TLS record: it may have
    /// `dlopen`ed a TLS library since its exec; read its maps again (rate-limited).
    fn rescan(&mut self, pid: u32) {
        let now = Instant::now();
        if self
            .rescans
            .get(&pid)
            .is_some_and(|t| now.duration_since(*t) < RESCAN_INTERVAL)
        {
            return;
        }
        if self.rescans.len() >= MAX_TLS_PIDS {
            self.rescans.clear();
        }
        self.rescans.insert(pid, now);
        self.send(TlsCmd::Rescan { pid });
    }

    fn emit(&mut self) {
        let now = Clock::monotonic_now_ns();
        for span in self.spans.drain(..) {
            let ex = &span.exchange;
            if !self.filter.allows_ports(ex.tuple.as_ref()) {
                SelfMetrics::add(&self.me.spans_filtered, 1);
                continue;
            }
            let res = self.enricher.resource(ex.pid);
            if !self.filter.allows_process(ex.pid, &res.executable_name)
                || !self.enricher.in_scope(ex.pid)
            {
                SelfMetrics::add(&self.me.spans_filtered, 1);
                continue;
            }
            SelfMetrics::add(&self.me.spans_produced, 1);
            let mut span = span;
            if span.exchange.grpc.is_none()
                && let Some(method) = span.method()
            {
                span.route = self
                    .routes
                    .route(&res.service_name, method, &span.exchange.target);
            }
            self.linker.push(res, span, now, &mut self.released);
        }
        self.linker.expire(now, &mut self.released);
        self.submit_released();
    }

    /// Exports the spans whose trace is known, records their metrics and the service-graph
    /// edges found.
    fn submit_released(&mut self) {
        // Edges can come without released spans (a client's pairing window ended), so they
        // are taken every time, also at shutdown.
        if !self.released.is_empty()
            && let Ok(mut m) = self.metrics.lock()
        {
            for (res, span) in &self.released {
                m.record(res, span);
            }
        }
        let edges = self.linker.take_edges();
        if !edges.is_empty()
            && let Ok(mut g) = self.graph.lock()
        {
            let now = self.proc.clock.to_unix_nanos(Clock::monotonic_now_ns());
            for e in &edges {
                g.record(e, &self.traces, now);
            }
        }
        let mut sampled_out = 0;
        for (res, span) in self.released.drain(..) {
            // Metrics took every exchange above; only spans are sampled.
            let input = SampleInput {
                trace_id: span.trace.trace_id,
                parent_sampled: span
                    .exchange
                    .context
                    .propagated
                    .as_ref()
                    .and_then(|p| p.sampled),
                is_error: span.status().0,
                duration_ns: span.duration_ns(),
            };
            if self.sampler.decide(&input).keep() {
                self.exporter.submit(res, span);
            } else {
                sampled_out += 1;
            }
        }
        SelfMetrics::add(&self.me.spans_sampled_out, sampled_out);
        SelfMetrics::set(&self.me.routes_overflowed, self.routes.stats().overflowed);
    }

    fn tick(&mut self, counters: &KernelCounters) {
        if let Some(why) = self.exporter.dead() {
            self.me.set_failure(&why);
        }
        self.proc.expire(Clock::monotonic_now_ns(), &mut self.spans);
        self.emit();
        let k = counters.read();
        let lost =
            k[Counter::DataLostRingbufFull as usize] + k[Counter::ControlLostRingbufFull as usize];
        self.me.events_lost_kernel.store(lost, Ordering::Relaxed);
        for (slot, v) in self.me.kernel_counters.iter().zip(k) {
            SelfMetrics::set(slot, v);
        }
        let l = self.linker.stats;
        for (slot, v) in [
            (&self.me.spans_paired, l.paired),
            (&self.me.spans_unpaired, l.expired_unpaired),
            (&self.me.client_spans_linked, l.client_linked),
            (&self.me.client_spans_unlinked, l.client_unlinked),
        ] {
            SelfMetrics::set(slot, v);
        }
        let stats = &self.proc.tracker.stats;
        self.me
            .parse_errors
            .store(stats.parsers.parse_errors, Ordering::Relaxed);
        self.me
            .connections_evicted
            .store(stats.connections_evicted, Ordering::Relaxed);
        if let Ok(k) = self.kmetrics.lock() {
            let v = k.peers_overflowed();
            SelfMetrics::set(&self.me.kernel_metric_peers_overflowed, v);
        }
        let h2 = stats.parsers.http2;
        for (counter, v) in [
            (&self.me.http2_frame_errors, h2.frame_errors),
            (&self.me.hpack_errors, h2.hpack_errors),
            (&self.me.http2_header_blocks_lost, h2.header_blocks_lost),
            (&self.me.http2_streams_dropped, h2.streams_dropped),
        ] {
            counter.store(v, Ordering::Relaxed);
        }
    }
}

/// Addresses of the export endpoints (each lookup bounded to 2 s; a name that does not resolve
/// then is left out, logged).
async fn resolve_endpoints(hosts: &[(String, u16)]) -> Vec<std::net::SocketAddr> {
    let mut out = Vec::new();
    for (host, port) in hosts {
        let lookup = tokio::net::lookup_host((host.as_str(), *port));
        match tokio::time::timeout(Duration::from_secs(2), lookup).await {
            Ok(Ok(addrs)) => out.extend(addrs),
            Ok(Err(e)) => log::warn!("export endpoint {host}:{port}: {e}; its traffic is captured"),
            Err(_) => log::warn!(
                "export endpoint {host}:{port}: lookup timed out; its traffic is captured"
            ),
        }
    }
    if !out.is_empty() {
        log::info!("not capturing connections to the export endpoints {out:?}");
    }
    out
}

/// Runs the receiver until SIGINT/SIGTERM, then flushes and detaches. `after_start` is
/// called once the probes are attached (the binary returns start-up memory to the kernel).
pub async fn run(cfg: Config, after_start: fn()) -> anyhow::Result<()> {
    let me = Arc::new(SelfMetrics::default());
    let ready = Arc::new(telemetry::Readiness::default());
    let server = telemetry::serve(
        parse_addr(&cfg.telemetry.health_address)?,
        parse_addr(&cfg.telemetry.metrics_address)?,
        me.clone(),
        ready.clone(),
    )
    .await?;
    let settings = ExportSettings::resolve(&cfg.exporters, &|k| std::env::var(k).ok())?;
    let own_endpoints = if cfg.receiver.filters.trace_export_endpoints {
        Vec::new()
    } else {
        resolve_endpoints(&settings.endpoint_hosts()).await
    };
    let metrics = Arc::new(Mutex::new(HttpMetrics::default()));
    let kmetrics = Arc::new(Mutex::new(KernelMetrics::new(
        kernel::metrics::DEFAULT_MAX_SERIES,
        Default::default(),
    )));
    let detector = Arc::new(Mutex::new(AnomalyDetector::new(
        cfg.receiver.kernel_timing.anomalies.clone(),
    )));
    let host = enrich::host_name();
    let logs = kernel::logs_source(detector.clone(), kmetrics.clone(), &host);
    let graph = Arc::new(Mutex::new(ServiceGraph::default()));
    let source = kernel::metrics_source(
        metrics.clone(),
        kmetrics.clone(),
        graph.clone(),
        kernel::anomaly::receiver_resource(&host),
    );
    let exporter = Exporter::start(settings, me.clone(), Some(source), Some(logs))?;

    // Kubernetes pod identity (a down API server only degrades enrichment; never blocks).
    let kube =
        enrich::kubernetes::start(&cfg.receiver.kubernetes, &|k| std::env::var(k).ok(), &host)
            .await?;
    if let Some(k) = &kube {
        let _ = me.kube.set(Arc::clone(k.stats()));
    }
    let mut probes = load(&cfg)?;
    let mut ring = ring_fd(&mut probes)?;
    let counters = probes.take_counters()?;
    log::info!(
        "attached {} ({}) (+{} network timing); capturing",
        probes.attached.len(),
        probes.attached.join(", "),
        probes.net.attached.len()
    );
    if let Ok(mut k) = kmetrics.lock() {
        k.set_reasons(probes.net.reasons.clone());
        k.set_sampling(crate::kernel::metrics::sampling_note(
            &cfg.receiver.kernel_timing.sampling,
        ));
    }
    me.set_net_plan(&probes.net.plan);
    let stop_layers = Arc::new(AtomicBool::new(false));
    let layer_thread = match probes.layers.take() {
        Some(s) => Some(s.spawn(stop_layers.clone())?),
        None => None,
    };
    // The attacher thread owns the object from here (and detaches everything when it ends).
    let tls_off = probes.tls_unavailable.clone();
    let (tx, rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let stop_attacher = Arc::new(AtomicBool::new(false));
    let tls_cfg = &cfg.receiver.tls;
    let settled = Arc::new(uprobes::gate::Settled::default());
    // The exec gate: its own thread (ptrace requests come from the tracing thread), fed
    // before anything else is done with an exec event.
    let gate = if tls_off.is_none() && tls_cfg.hold_exec {
        let (gtx, grx) = mpsc::channel();
        uprobes::gate::spawn(
            uprobes::gate::GateConfig {
                enabled: true,
                max_hold: Duration::from_secs_f64(tls_cfg.hold_exec_max_seconds),
            },
            grx,
            settled.clone(),
            me.tls.gate.clone(),
        )?;
        Some(gtx)
    } else {
        None
    };
    let worker = uprobes::spawn(
        probes.into_ebpf(),
        tls_off.is_none(),
        me.tls.clone(),
        rx,
        started_tx,
        stop_attacher.clone(),
        uprobes::TlsOptions {
            linger_files: tls_cfg.linger_files,
            state_dir: tls_cfg.state_dir.as_ref().map(std::path::PathBuf::from),
            cache_entries: tls_cfg.cache_entries,
            gate: gate.clone(),
            settled,
        },
    )?;
    let tls = match tls_off {
        None => {
            // Healthy only once running processes are scanned, so what starts next is seen.
            let _ = started_rx.recv_timeout(Duration::from_secs(60));
            Some(tx.clone())
        }
        Some(why) => {
            log::warn!("TLS plaintext capture is off: {why}");
            None
        }
    };
    // Without TLS the sender still keeps the attacher thread (and the object) alive.
    let keep_alive = tls.is_none().then_some(tx);
    ready.store(true, Ordering::Release);
    after_start();

    let mut rt = Runtime {
        proc: Processor::new(&cfg, Clock::from_system()),
        enricher: Enricher::new("/proc".into(), host)
            .with_full_command_line(cfg.receiver.full_command_line)
            .with_kubernetes(kube),
        filter: Filter::new(&cfg.receiver.filters).with_excluded_endpoints(own_endpoints),
        metrics,
        kmetrics,
        detector,
        exporter,
        me,
        spans: Vec::new(),
        linker: Linker::new(LinkConfig {
            wait_ns: (cfg.receiver.traces.join_wait_seconds * 1e9) as u64,
            ..LinkConfig::default()
        }),
        released: Vec::new(),
        graph,
        traces: cfg.receiver.traces.clone(),
        routes: RouteTable::new(&cfg.receiver.routes)
            .map_err(|e| anyhow::anyhow!("receiver.routes: {e}"))?,
        sampler: Sampler::new(&cfg.receiver.sampling),
        tls,
        gate,
        tls_pids: HashSet::new(),
        rescans: HashMap::new(),
    };
    // Registered once: a future made per loop turn (tokio::signal::ctrl_c()) misses a signal
    // that arrives while the loop is busy between two turns.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut poll = tokio::time::interval(RING_POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tick.tick() => rt.tick(&counters),
            _ = poll.tick() => {
                let rb = ring.get_mut();
                let mut n = 0;
                while n < RING_BATCH && let Some(item) = rb.next() {
                    rt.on_record(&item);
                    n += 1;
                }
                if n == RING_BATCH {
                    tokio::task::yield_now().await;
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let rb = guard.get_inner_mut();
                let mut n = 0;
                while n < RING_BATCH && let Some(item) = rb.next() {
                    rt.on_record(&item);
                    n += 1;
                }
                if n < RING_BATCH {
                    guard.clear_ready();
                } else {
                    // More waiting: stay readable, but let the rest of the thread run first.
                    drop(guard);
                    tokio::task::yield_now().await;
                }
            }
        }
    }
    // Shutdown: at most SHUTDOWN_BUDGET (+ the telemetry server's 1 s grace, concurrent)
    // whatever the backend or the attacher do.
    let stopping = Instant::now();
    log::info!("stopping: draining, flushing and detaching");
    ready.store(false, Ordering::Release);
    // The attacher drops its backlog of scans instead of working it off.
    stop_attacher.store(true, Ordering::Release);
    stop_layers.store(true, Ordering::Release);
    if let Some(t) = layer_thread {
        // Ends within one tick (50 ms) and detaches the per-packet hooks.
        let _ = t.join();
    }
    // The ring refills under load: drain for a bounded time only.
    while stopping.elapsed() < SHUTDOWN_DRAIN
        && let Some(item) = ring.get_mut().next()
    {
        rt.on_record(&item);
    }
    rt.tick(&counters);
    rt.linker.flush(&mut rt.released);
    rt.submit_released();
    drop(ring);
    let Runtime { exporter, tls, .. } = rt;
    drop(tls);
    drop(keep_alive);
    // Joined on a plain thread (not spawn_blocking: the runtime would wait for it on exit),
    // concurrently with the flush; the attacher may be inside one file's analysis. If it does
    // not end in time we exit anyway: the kernel detaches every probe of a closed object.
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = joined_tx.send(worker.join().is_ok());
    });
    let flush = SHUTDOWN_BUDGET
        .saturating_sub(stopping.elapsed())
        .saturating_sub(EXPORT_GRACE);
    let detach_by = stopping + SHUTDOWN_BUDGET;
    let (_, _, joined) = tokio::join!(
        exporter.shutdown_within(flush),
        server.shutdown(),
        tokio::time::timeout_at(detach_by.into(), joined_rx),
    );
    match joined {
        Ok(Ok(true)) => {}
        Ok(_) => log::warn!("TLS attacher thread panicked"),
        Err(_) => log::warn!("TLS attacher still busy at the shutdown deadline; exiting anyway"),
    }
    log::info!("stopped in {} ms", stopping.elapsed().as_millis());
    Ok(())
}
