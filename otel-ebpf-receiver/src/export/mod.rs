//! Export: console, OTLP/gRPC and OTLP/HTTP (protobuf) for traces, metrics and logs.
//!
//! Stage: span/enrich → **export**. Input: [`SpanRecord`]s, each with the
//! `Arc<ProcessResource>` of the process it was observed in ([`Exporter::submit`]), an optional [`MetricsSource`] polled
//! every metrics interval and an optional [`LogsSource`] polled every flush interval. Output:
//! OTLP `ExportTraceServiceRequest`s (one `ResourceSpans` per process),
//! `ExportMetricsServiceRequest`s and `ExportLogsServiceRequest`s, and/or one console line per
//! span and per log record.
//!
//! Limits: at most `queue_size` spans wait in the queue plus `max_batch_size` in the batch being
//! sent; past that, spans are dropped and counted (`spans_dropped`), never blocking the caller.
//! Retryable failures are retried with jittered exponential backoff for a bounded time
//! ([`RetrySettings`]); then the batch is dropped and counted.
//!
//! Submodules: [`settings`] (config + env), `queue` (bounded queue, batching task, metrics
//! task), `logs` (logs task, console log lines), `batch` (instrumentation scope), `encode`
//! (spans → OTLP protobuf bytes, grouped by resource), `otlp` (our metrics and log models → OTLP
//! objects for metrics and logs), `retry`, [`reply`] (what a backend answered: accepted,
//! retry after, give up), [`split`] (metrics requests cut under
//! `exporters.max_metrics_request_bytes`), `transport` (`grpc`, `http`, `tls`), `console`.

pub mod batch;
mod console;
pub mod encode;
mod grpc;
mod http;
mod logs;
pub(crate) mod otlp;
mod queue;
pub mod reply;
mod retry;
pub mod settings;
pub mod split;
mod tls;
mod transport;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::enrich::ProcessResource;
use crate::span::SpanRecord;
use crate::telemetry::SelfMetrics;

pub use settings::{
    Compression, ExportSettings, FileSetting, OtlpSignalSettings, Protocol, RetrySettings, Signal,
    TlsSettings,
};

/// Produces one metrics export request; called with the current time (Unix ns) every
/// `metrics_interval` and once more at shutdown. `None` means "nothing to export now".
pub type MetricsSource = Box<dyn FnMut(u64) -> Option<crate::model::MetricsBatch> + Send>;

/// Produces one logs export request; called with the current time (Unix ns) every
/// `flush_interval` (`exporters.flush_interval_seconds`) and once more at shutdown. `None` (or
/// a request without records) means "nothing to export now". The request is sent as built.
pub type LogsSource = Box<dyn FnMut(u64) -> Option<crate::model::LogsBatch> + Send>;

/// Why export settings could not be resolved or the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A variable or config key has a bad value; `name` is e.g. `OTEL_EXPORTER_OTLP_TIMEOUT`
    /// or `exporters.otlp.endpoint`.
    #[error("{name}: invalid value {value:?}: {reason}")]
    InvalidSetting {
        /// Environment variable or config key path.
        name: String,
        /// The offending value, as given.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// A TLS file (CA, client certificate or key) is missing, unreadable or not valid PEM.
    #[error("{origin}: {path}: {reason}")]
    TlsFile {
        /// Variable or config key that named the file.
        origin: String,
        /// The file path.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The exporter could not be started (no tokio runtime, TLS setup, endpoint rejected).
    #[error("cannot start exporter: {0}")]
    Start(String),
}

/// Safety margin after the shutdown deadline before export tasks are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A queued span with its process resource.
pub type Item = (Arc<ProcessResource>, SpanRecord);

/// Shared state between the [`Exporter`] handle and its tasks.
pub(crate) struct Shared {
    pub self_metrics: Arc<SelfMetrics>,
    /// Spans accepted by `submit` and not yet exported or dropped (queue + batch in flight);
    /// shared with the self-metrics (`otelcol_exporter_queue_size`).
    pub pending: Arc<AtomicU64>,
}

/// Handle to the running export tasks. Cheap `submit` from any thread; `shutdown` to flush.
pub struct Exporter {
    tx: mpsc::Sender<Item>,
    shared: Arc<Shared>,
    /// `Some(deadline)` once shutdown started: tasks stop retrying past it.
    closing: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Exporter {
    /// Spawns the export tasks on the current tokio runtime. Reads and checks TLS files and
    /// builds the OTLP clients (connections are made lazily, on the first export). `metrics`
    /// is polled every metrics interval, `logs` every flush interval; both once more at
    /// shutdown.
    pub fn start(
        settings: ExportSettings,
        self_metrics: Arc<SelfMetrics>,
        metrics: Option<MetricsSource>,
        logs: Option<LogsSource>,
    ) -> Result<Self, ExportError> {
        let console = settings.console.then(console::Console::stdout);
        Self::start_with_console(settings, self_metrics, metrics, logs, console)
    }

    /// [`Exporter::start`] with the console sink chosen by the caller (tests write to memory).
    pub(crate) fn start_with_console(
        settings: ExportSettings,
        self_metrics: Arc<SelfMetrics>,
        metrics: Option<MetricsSource>,
        logs: Option<LogsSource>,
        console: Option<console::Console>,
    ) -> Result<Self, ExportError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ExportError::Start("must be called inside a tokio runtime".into()))?;
        if settings.queue_size == 0 || settings.max_batch_size == 0 {
            return Err(ExportError::Start(
                "queue_size and max_batch_size must be at least 1".into(),
            ));
        }
        if settings.flush_interval.is_zero() || settings.metrics_interval.is_zero() {
            return Err(ExportError::Start(
                "flush_interval and metrics_interval must be positive".into(),
            ));
        }
        let traces_transport = match &settings.traces {
            Some(s) => Some(transport::Transport::new(s, Signal::Traces)?),
            None => None,
        };
        let metrics_transport = match &settings.metrics {
            Some(s) => Some(transport::Transport::new(s, Signal::Metrics)?),
            None => None,
        };
        let logs_transport = match (&settings.logs, &logs) {
            (Some(s), Some(_)) => Some(transport::Transport::new(s, Signal::Logs)?),
            _ => None,
        };
        if traces_transport.is_none() && console.is_none() {
            log::warn!("no trace endpoint and console off: spans are discarded");
        }
        let pending = Arc::new(AtomicU64::new(0));
        let _ = self_metrics.exporter.set(crate::telemetry::ExporterGauges {
            id: if traces_transport.is_some() {
                "otlp"
            } else {
                "debug"
            },
            queue_size: pending.clone(),
            queue_capacity: settings.queue_size as u64,
        });
        let shared = Arc::new(Shared {
            self_metrics,
            pending,
        });
        let (tx, rx) = mpsc::channel(settings.queue_size);
        let (closing, closing_rx) = watch::channel(None);
        let logs_console = console.as_ref().map(console::Console::duplicate);
        let mut tasks = vec![
            runtime.spawn(
                queue::TracePipeline {
                    rx,
                    console,
                    otlp: traces_transport,
                    shared: shared.clone(),
                    closing: closing_rx.clone(),
                    retry: settings.retry,
                    max_batch_size: settings.max_batch_size,
                    flush_interval: settings.flush_interval,
                    encoder: Default::default(),
                }
                .run(),
            ),
        ];
        match (metrics, metrics_transport) {
            (Some(source), Some(transport)) => tasks.push(runtime.spawn(queue::run_metrics(
                source,
                transport,
                shared.clone(),
                closing_rx.clone(),
                settings.retry,
                settings.metrics_interval,
                settings.max_metrics_request_bytes,
            ))),
            (Some(_), None) => log::info!("no metrics endpoint: metrics are not exported"),
            _ => {}
        }
        if let Some(source) = logs {
            if logs_transport.is_none() && logs_console.is_none() {
                log::info!("no logs endpoint and console off: log records are discarded");
            }
            tasks.push(
                runtime.spawn(
                    logs::LogsTask {
                        source,
                        console: logs_console,
                        otlp: logs_transport,
                        shared: shared.clone(),
                        closing: closing_rx.clone(),
                        retry: settings.retry,
                        interval: settings.flush_interval,
                    }
                    .run(),
                ),
            );
        }
        Ok(Self {
            tx,
            shared,
            closing,
            tasks,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// Non-blocking; when the bounded queue is full the span is dropped and counted
    /// (`spans_dropped`). Returns false if dropped.
    pub fn submit(&self, resource: Arc<ProcessResource>, span: SpanRecord) -> bool {
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send((resource, span)).is_ok() {
            return true;
        }
        self.shared.pending.fetch_sub(1, Ordering::Relaxed);
        SelfMetrics::add(&self.shared.self_metrics.spans_dropped, 1);
        SelfMetrics::add(&self.shared.self_metrics.spans_enqueue_failed, 1);
        false
    }

    /// Spans accepted by [`Exporter::submit`] that are not yet exported or dropped (queued or
    /// in the batch being sent). Bounded by `queue_size + max_batch_size`.
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Why the exporter no longer works: an export task ended (it panicked) before shutdown.
    /// Spans submitted then are never sent.
    pub fn dead(&self) -> Option<String> {
        let ended = self.tasks.iter().filter(|t| t.is_finished()).count();
        (ended > 0 && self.closing.borrow().is_none())
            .then(|| format!("{ended} export task(s) ended unexpectedly; spans are not exported"))
    }

    /// Flushes everything queued (one last metrics collection too) within the timeout
    /// (`shutdown_timeout`, the OTLP timeout), then stops. Spans still unsent at the deadline
    /// are dropped and counted; an attempt running at the deadline is abandoned.
    pub async fn shutdown(self) {
        let t = self.shutdown_timeout;
        self.shutdown_within(t).await
    }

    /// [`Exporter::shutdown`] with a deadline of at most `max` from now (plus a 1 s grace for
    /// a sink that blocks), whatever the OTLP timeout: a SIGTERM must end within the
    /// orchestrator's grace period even with the backend down.
    pub async fn shutdown_within(self, max: Duration) {
        let Self {
            tx,
            shared,
            closing,
            tasks,
            shutdown_timeout,
        } = self;
        let deadline = Instant::now() + shutdown_timeout.min(max);
        drop(tx);
        closing.send_replace(Some(deadline));
        // The tasks stop by themselves at the deadline (no attempt runs past it); the grace
        // only guards against a sink that blocks (e.g. a stuck stdout).
        let tokio_deadline = tokio::time::Instant::from_std(deadline + SHUTDOWN_GRACE);
        for mut task in tasks {
            if tokio::time::timeout_at(tokio_deadline, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
        let left = shared.pending.swap(0, Ordering::Relaxed);
        if left > 0 {
            log::warn!("export shutdown timed out: {left} spans dropped");
            SelfMetrics::add(&shared.self_metrics.spans_dropped, left);
            SelfMetrics::add(&shared.self_metrics.spans_send_failed, left);
        }
    }
}
