//! Bounded queue consumer: batching task for spans and the periodic metrics task.
//!
//! Stage: the running part of **export**. Input: the receiving end of the bounded span queue
//! (filled by `Exporter::submit`), a [`MetricsSource`]. Output: console lines and OTLP export
//! requests, with self-metrics accounting: `spans_exported` (accepted by the backend or written
//! to the console), `spans_dropped` (rejected in a partial success, or the batch failed
//! permanently / ran out of retry time), `export_failures` (per failed attempt, in `retry`).
//! Limits: a batch is sent when it holds `max_batch_size` spans or `flush_interval` after the
//! last send; while a batch is being retried the queue is not drained, so new spans queue up to
//! `queue_size` and the rest are dropped by `submit` — memory stays bounded by
//! `queue_size + max_batch_size` spans.
//! Source: batch span processor behaviour,
//! <https://opentelemetry.io/docs/specs/otel/trace/sdk/#batching-processor>.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::console::Console;
use super::encode::TraceEncoder;
use super::retry::{shutdown_deadline, shutdown_started, with_retry};
use super::transport::Transport;
use super::{Item, MetricsSource, RetrySettings, Shared};
use crate::telemetry::SelfMetrics;

/// The span batching task.
pub(crate) struct TracePipeline {
    pub rx: mpsc::Receiver<Item>,
    pub console: Option<Console>,
    pub otlp: Option<Transport>,
    pub shared: Arc<Shared>,
    pub closing: watch::Receiver<Option<Instant>>,
    pub retry: RetrySettings,
    pub max_batch_size: usize,
    pub flush_interval: Duration,
    pub encoder: TraceEncoder,
}

impl TracePipeline {
    /// Runs until the queue's sender is dropped and everything queued has been handled.
    pub async fn run(mut self) {
        let mut batch: Vec<Item> = Vec::with_capacity(self.max_batch_size.min(4096));
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await; // The first tick completes immediately.
        loop {
            let room = self.max_batch_size - batch.len();
            tokio::select! {
                n = self.rx.recv_many(&mut batch, room) => {
                    if n == 0 {
                        break; // Closed and drained.
                    }
                    if batch.len() >= self.max_batch_size {
                        self.flush(&mut batch).await;
                        tick.reset();
                    }
                }
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.flush(&mut batch).await;
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.flush(&mut batch).await;
        }
    }

    /// Sends one batch to every sink and settles its accounting.
    async fn flush(&mut self, batch: &mut Vec<Item>) {
        let items = std::mem::take(batch);
        let n = items.len() as u64;
        let metrics = &self.shared.self_metrics;
        if let Some(console) = &mut self.console {
            console.write_batch(&items);
            if self.otlp.is_none() {
                SelfMetrics::add(&metrics.spans_exported, n);
            }
        }
        if let Some(transport) = &self.otlp {
            let body = bytes::Bytes::from(self.encoder.request(&items));
            drop(items);
            let result = with_retry(&self.retry, &self.closing, metrics, || {
                transport.export_traces(&body)
            })
            .await;
            match result {
                Ok(rejected) => {
                    let rejected = rejected.min(n);
                    SelfMetrics::add(&metrics.spans_exported, n - rejected);
                    SelfMetrics::add(&metrics.spans_dropped, rejected);
                    SelfMetrics::add(&metrics.spans_send_failed, rejected);
                }
                Err(e) => {
                    log::warn!("dropping {n} spans: {}", e.message);
                    SelfMetrics::add(&metrics.spans_dropped, n);
                    SelfMetrics::add(&metrics.spans_send_failed, n);
                }
            }
        }
        self.shared.pending.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The current time (Unix ns; 0 if the clock is before 1970).
pub(crate) fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Calls `source` every `interval` and exports what it returns; after shutdown starts, one
/// last collection is made and exported, then the task ends.
pub(crate) async fn run_metrics(
    mut source: MetricsSource,
    transport: Transport,
    shared: Arc<Shared>,
    closing: watch::Receiver<Option<Instant>>,
    retry: RetrySettings,
    interval: Duration,
    max_request_bytes: usize,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let last = if shutdown_deadline(&closing).is_some() {
            true
        } else {
            tokio::select! {
                _ = tick.tick() => false,
                _ = shutdown_started(closing.clone()) => true,
            }
        };
        if let Some(req) = source(now_unix_ns()) {
            let metrics = &shared.self_metrics;
            // One collection may exceed what a collector accepts: sent in size-bounded parts.
            let req = super::otlp::metrics_request(&req);
            for part in super::split::split_metrics(req, max_request_bytes) {
                let result = with_retry(&retry, &closing, metrics, || {
                    transport.export_metrics(&part)
                })
                .await;
                if let Err(e) = result {
                    log::warn!("dropping a metrics export: {}", e.message);
                }
            }
        }
        if last {
            break;
        }
    }
}
