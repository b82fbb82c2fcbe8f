//! Self-telemetry: counters every stage increments, served as Prometheus text, and the health
//! endpoint.
//!
//! Stage: beside every stage, for the whole run. Input: [`SelfMetrics`] (shared atomics that
//! the stages increment) and a readiness flag (set once every probe is attached).
//! Output: [`SelfMetrics::render_prometheus`] (text exposition format 0.0.4, with the
//! Collector's `otelcol_*` self-telemetry names beside ours) and, via [`serve`], HTTP answers:
//! `GET /` on the health address (the Collector health_check extension's answer: 200
//! `{"status":"Server available","upSince":…,"uptime":…}` when ready, 503 before) and
//! `GET /metrics` on the metrics address.
//! Limits: counters and gauges only (no histograms, no process metrics); values are read with relaxed
//! ordering, so one scrape may mix values from slightly different instants; HTTP/1.1 only,
//! no TLS or authentication (bind to loopback, the default); at most 64 connections at once
//! per endpoint, 10 s to send request headers.

mod health;
mod prometheus;
mod server;

#[cfg(test)]
mod tests;

pub use health::{Readiness, STATUS_AVAILABLE, STATUS_NOT_AVAILABLE, go_duration, rfc3339_nanos};
pub use prometheus::{escape_help, escape_label_value};
pub use server::{ServerHandle, serve};

use otel_ebpf_common::{COUNTER_COUNT, Counter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Number of the probes' kernel counters (entries of the BPF `COUNTERS` array).
pub const KERNEL_COUNTERS: usize = COUNTER_COUNT as usize;

/// Counters of the receiver itself. All are monotonically increasing totals since start.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    /// Ring buffer records read (records). Prometheus: `otel_ebpf_events_read_total`.
    pub events_read: AtomicU64,
    /// Events lost in the kernel (events; sum of the probes' drop counters), last value read:
    /// set with [`SelfMetrics::set`], not added to. Prometheus:
    /// `otel_ebpf_events_lost_kernel_total`.
    pub events_lost_kernel: AtomicU64,
    /// Records that could not be decoded (records). Prometheus: `otel_ebpf_decode_errors_total`.
    pub decode_errors: AtomicU64,
    /// HTTP parse errors (a connection's stream was not valid HTTP where HTTP was expected).
    /// Prometheus: `otel_ebpf_parse_errors_total`.
    pub parse_errors: AtomicU64,
    /// Malformed HTTP/2 frames and losses of frame sync (errors), last value read (set, not
    /// added to). Prometheus: `otel_ebpf_http2_frame_errors_total`.
    pub http2_frame_errors: AtomicU64,
    /// HTTP/2 header blocks HPACK could not decode whole (blocks), last value read.
    /// Prometheus: `otel_ebpf_hpack_errors_total`.
    pub hpack_errors: AtomicU64,
    /// HTTP/2 header blocks lost to capture or too large (blocks), last value read.
    /// Prometheus: `otel_ebpf_http2_header_blocks_lost_total`.
    pub http2_header_blocks_lost: AtomicU64,
    /// HTTP/2 streams not tracked (too many open on a connection) (streams), last value read.
    /// Prometheus: `otel_ebpf_http2_streams_dropped_total`.
    pub http2_streams_dropped: AtomicU64,
    /// Spans built (spans). Prometheus: `otel_ebpf_spans_produced_total`.
    pub spans_produced: AtomicU64,
    /// Spans accepted by the backend (or written to the console) (spans). Prometheus:
    /// `otel_ebpf_spans_exported_total`.
    pub spans_exported: AtomicU64,
    /// Spans dropped: queue full, or the backend rejected them after retries (spans).
    /// Prometheus: `otel_ebpf_spans_dropped_total`.
    pub spans_dropped: AtomicU64,
    /// Export requests that failed, each retry counted (requests). Prometheus:
    /// `otel_ebpf_export_failures_total`.
    pub export_failures: AtomicU64,
    /// Spans filtered out by the config's filters (spans). Prometheus:
    /// `otel_ebpf_spans_filtered_total`.
    pub spans_filtered: AtomicU64,
    /// SERVER spans paired with the CLIENT span of the same request on this host (spans),
    /// last value read. Prometheus: `otel_ebpf_spans_paired_total`.
    pub spans_paired: AtomicU64,
    /// SERVER spans whose client was on this host but not found within the join wait (spans),
    /// last value read. Prometheus: `otel_ebpf_spans_unpaired_total`.
    pub spans_unpaired: AtomicU64,
    /// CLIENT spans given a parent (in-process causality or a propagated context) (spans),
    /// last value read. Prometheus: `otel_ebpf_client_spans_linked_total`.
    pub client_spans_linked: AtomicU64,
    /// CLIENT spans without a parent (spans), last value read. Prometheus:
    /// `otel_ebpf_client_spans_unlinked_total`.
    pub client_spans_unlinked: AtomicU64,
    /// Log records (TCP anomalies) accepted by the backend, or written to the console when no
    /// logs endpoint is set (log records). Prometheus: `otel_ebpf_log_records_exported_total`.
    pub log_records_exported: AtomicU64,
    /// Log records dropped: rejected by the backend (partial success) or their export failed
    /// after retries (log records). Prometheus: `otel_ebpf_log_records_dropped_total`.
    pub log_records_dropped: AtomicU64,
    /// Connections evicted from the user-space tracker (its bound; their unfinished exchanges
    /// are lost) (connections), last value read. Prometheus:
    /// `otel_ebpf_connections_evicted_total`.
    pub connections_evicted: AtomicU64,
    /// Kernel metric samples recorded without their peer address (peer never seen in an
    /// exchange, e.g. a forged SYN source, or the peer budget spent), last value read.
    /// Prometheus: `otel_ebpf_kernel_metric_peers_overflowed_total`.
    pub kernel_metric_peers_overflowed: AtomicU64,
    /// The probes' own counters, indexed by [`otel_ebpf_common::Counter`] (`as usize`): the
    /// per-CPU values of the BPF `COUNTERS` array summed over CPUs, last value read (set with
    /// [`SelfMetrics::set`]). Prometheus: `otel_ebpf_kernel_events_total{counter="…"}`, the
    /// label from [`kernel_counter_label`].
    pub kernel_counters: [AtomicU64; KERNEL_COUNTERS],
    /// TLS attachment: files skipped (Prometheus `otel_ebpf_tls_skipped_total{reason,file}`,
    /// one series per (reason label, file path), bounded) and files attached now (gauge
    /// `otel_ebpf_tls_attached_files`).
    pub tls: std::sync::Arc<crate::probes::uprobes::TlsStats>,
    /// Exchanges whose route overflowed (a service past `receiver.routes.max_span_names`),
    /// mirrored from `RouteStats::overflowed` with [`SelfMetrics::set`]. Prometheus:
    /// `otel_ebpf_routes_overflowed_total`.
    pub routes_overflowed: AtomicU64,
    /// Spans sampling dropped (spans; their exchanges are in the metrics). Prometheus:
    /// `otel_ebpf_spans_sampled_out_total`.
    pub spans_sampled_out: AtomicU64,
    /// Spans the export queue had no room for (spans; also in `spans_dropped`). Prometheus:
    /// `otelcol_receiver_refused_spans_total` and `otelcol_exporter_enqueue_failed_spans_total`.
    pub spans_enqueue_failed: AtomicU64,
    /// Spans whose export failed: rejected by the backend, failed after retries, or left unsent
    /// at shutdown (spans; also in `spans_dropped`). Prometheus:
    /// `otelcol_exporter_send_failed_spans_total`.
    pub spans_send_failed: AtomicU64,
    /// The span exporter, once started: its Collector-style id (`otlp`, or `debug` for the
    /// console alone), its queue's fill (spans queued or in the batch being sent) and its
    /// capacity (spans). Prometheus: the `otelcol_exporter_*` families, label `exporter`.
    pub exporter: OnceLock<ExporterGauges>,
    /// Why the receiver is no longer working (an export task ended); health answers 503 with
    /// it. Set once, never cleared.
    pub failure: std::sync::Mutex<Option<String>>,
    /// The kernel network timing probe plan: (measurement point, hook or `none`, in use).
    /// Prometheus gauge `otel_ebpf_kernel_timing_hook{point,hook}` (1 in use, 0 none).
    pub net_plan: std::sync::Mutex<Vec<(String, String, bool)>>,
    /// Kubernetes enrichment counters, set once at start-up when it is on (Prometheus
    /// `otel_ebpf_k8s_watch_errors_total`, `otel_ebpf_k8s_pod_lookup_misses_total`).
    pub kube: std::sync::OnceLock<std::sync::Arc<crate::enrich::kubernetes::KubeStats>>,
}

/// The span exporter's identity and queue, as the `otelcol_exporter_*` families show them.
#[derive(Debug)]
pub struct ExporterGauges {
    /// Collector-style component id: `otlp` or `debug` (console only).
    pub id: &'static str,
    /// Spans accepted by the exporter and not yet exported or dropped (shared with it).
    pub queue_size: Arc<AtomicU64>,
    /// The queue's capacity (spans, `exporters.queue_size`).
    pub queue_capacity: u64,
}

impl SelfMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the network timing probe plan (see [`SelfMetrics::net_plan`]).
    pub fn set_net_plan(&self, plan: &[crate::kernel::plan::HookPlan]) {
        use crate::kernel::plan::Mechanism;
        let rows = plan
            .iter()
            .map(|h| {
                let hook = match h.target {
                    Some(t) => format!("{} {t}", h.chosen.name()),
                    None => "none".into(),
                };
                (h.what.to_string(), hook, h.chosen != Mechanism::None)
            })
            .collect();
        if let Ok(mut p) = self.net_plan.lock() {
            *p = rows;
        }
    }

    /// Records why the receiver stopped working (the first reason is kept).
    pub fn set_failure(&self, reason: &str) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            log::error!("{reason}");
            *f = Some(reason.to_string());
        }
    }

    /// The first failure of the pipeline or of the TLS attacher, if any.
    pub fn failure(&self) -> Option<String> {
        let own = self.failure.lock().ok().and_then(|f| f.clone());
        own.or_else(|| self.tls.failure())
    }

    /// Sets a counter that mirrors a total kept elsewhere (the kernel's counters).
    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }
}

/// Content type of [`SelfMetrics::render_prometheus`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One counter family: its Prometheus name, help text and field.
struct CounterDesc {
    name: &'static str,
    help: &'static str,
    get: fn(&SelfMetrics) -> &AtomicU64,
}

const COUNTERS: &[CounterDesc] = &[
    CounterDesc {
        name: "otel_ebpf_events_read_total",
        help: "Ring buffer records read.",
        get: |m| &m.events_read,
    },
    CounterDesc {
        name: "otel_ebpf_events_lost_kernel_total",
        help: "Events lost in the kernel (sum of the probes' drop counters).",
        get: |m| &m.events_lost_kernel,
    },
    CounterDesc {
        name: "otel_ebpf_decode_errors_total",
        help: "Ring buffer records that could not be decoded.",
        get: |m| &m.decode_errors,
    },
    CounterDesc {
        name: "otel_ebpf_parse_errors_total",
        help: "Connection streams that were not valid HTTP where HTTP was expected.",
        get: |m| &m.parse_errors,
    },
    CounterDesc {
        name: "otel_ebpf_http2_frame_errors_total",
        help: "Malformed HTTP/2 frames and losses of frame sync.",
        get: |m| &m.http2_frame_errors,
    },
    CounterDesc {
        name: "otel_ebpf_hpack_errors_total",
        help: "HTTP/2 header blocks HPACK could not decode whole (limits, malformed blocks).",
        get: |m| &m.hpack_errors,
    },
    CounterDesc {
        name: "otel_ebpf_http2_header_blocks_lost_total",
        help: "HTTP/2 header blocks lost to capture or too large to assemble.",
        get: |m| &m.http2_header_blocks_lost,
    },
    CounterDesc {
        name: "otel_ebpf_http2_streams_dropped_total",
        help: "HTTP/2 streams not tracked because a connection had too many open.",
        get: |m| &m.http2_streams_dropped,
    },
    CounterDesc {
        name: "otel_ebpf_spans_produced_total",
        help: "Spans built from HTTP exchanges.",
        get: |m| &m.spans_produced,
    },
    CounterDesc {
        name: "otel_ebpf_spans_exported_total",
        help: "Spans accepted by the backend or written to the console.",
        get: |m| &m.spans_exported,
    },
    CounterDesc {
        name: "otel_ebpf_spans_dropped_total",
        help: "Spans dropped: export queue full, or rejected by the backend after retries.",
        get: |m| &m.spans_dropped,
    },
    CounterDesc {
        name: "otel_ebpf_export_failures_total",
        help: "Export requests that failed (each retry counts).",
        get: |m| &m.export_failures,
    },
    CounterDesc {
        name: "otel_ebpf_spans_filtered_total",
        help: "Spans filtered out by the configured include/exclude filters.",
        get: |m| &m.spans_filtered,
    },
    CounterDesc {
        name: "otel_ebpf_spans_paired_total",
        help: "SERVER spans paired with the CLIENT span of the same request on this host.",
        get: |m| &m.spans_paired,
    },
    CounterDesc {
        name: "otel_ebpf_spans_unpaired_total",
        help: "SERVER spans whose local client was not found within the join wait.",
        get: |m| &m.spans_unpaired,
    },
    CounterDesc {
        name: "otel_ebpf_client_spans_linked_total",
        help: "CLIENT spans given a parent (in-process causality or propagated context).",
        get: |m| &m.client_spans_linked,
    },
    CounterDesc {
        name: "otel_ebpf_client_spans_unlinked_total",
        help: "CLIENT spans without a parent.",
        get: |m| &m.client_spans_unlinked,
    },
    CounterDesc {
        name: "otel_ebpf_log_records_exported_total",
        help: "Log records accepted by the backend or written to the console.",
        get: |m| &m.log_records_exported,
    },
    CounterDesc {
        name: "otel_ebpf_log_records_dropped_total",
        help: "Log records dropped: rejected by the backend, or their export failed after retries.",
        get: |m| &m.log_records_dropped,
    },
    CounterDesc {
        name: "otel_ebpf_routes_overflowed_total",
        help: "Exchanges whose route overflowed: the service had too many span names.",
        get: |m| &m.routes_overflowed,
    },
    CounterDesc {
        name: "otel_ebpf_spans_sampled_out_total",
        help: "Spans not exported because sampling dropped them (their exchanges are in the metrics).",
        get: |m| &m.spans_sampled_out,
    },
    CounterDesc {
        name: "otel_ebpf_connections_evicted_total",
        help: "Connections evicted from the tracker to stay within its bound (their unfinished exchanges are lost).",
        get: |m| &m.connections_evicted,
    },
    CounterDesc {
        name: "otel_ebpf_kernel_metric_peers_overflowed_total",
        help: "Kernel metric samples recorded without their network.peer.address (peer not seen in an exchange, or the peer budget spent), in series marked otel.metric.overflow=true.",
        get: |m| &m.kernel_metric_peers_overflowed,
    },
];

const KERNEL_FAMILY: &str = "otel_ebpf_kernel_events_total";
const KERNEL_HELP: &str = "The eBPF probes' own counters, summed over CPUs, by counter.";

/// Every kernel counter, in index order (`ALL_KERNEL_COUNTERS[i] as usize == i`).
pub const ALL_KERNEL_COUNTERS: [Counter; KERNEL_COUNTERS] = [
    Counter::DataEvents,
    Counter::DataLostRingbufFull,
    Counter::ControlLostRingbufFull,
    Counter::UntracedSyscall,
    Counter::ConnMapFull,
    Counter::PayloadReadFailed,
    Counter::TlsEvents,
    Counter::TlsNoSocket,
    Counter::TlsCallMapFull,
    Counter::TlsCiphertextSkipped,
    Counter::NetLostRingbufFull,
    Counter::TlsCallStale,
    Counter::ConnCloseUntracked,
];

/// The `counter` label value of a kernel counter in `otel_ebpf_kernel_events_total`.
pub fn kernel_counter_label(counter: Counter) -> &'static str {
    match counter {
        Counter::DataEvents => "data_events",
        Counter::DataLostRingbufFull => "data_lost_ringbuf_full",
        Counter::ControlLostRingbufFull => "control_lost_ringbuf_full",
        Counter::UntracedSyscall => "untraced_syscall",
        Counter::ConnMapFull => "conn_map_full",
        Counter::PayloadReadFailed => "payload_read_failed",
        Counter::TlsEvents => "tls_events",
        Counter::TlsNoSocket => "tls_no_socket",
        Counter::TlsCallMapFull => "tls_call_map_full",
        Counter::TlsCiphertextSkipped => "tls_ciphertext_skipped",
        Counter::NetLostRingbufFull => "net_lost_ringbuf_full",
        Counter::TlsCallStale => "tls_call_stale",
        Counter::ConnCloseUntracked => "conn_close_untracked",
    }
}
