//! The Prometheus text exposition of [`SelfMetrics`], with the Collector's own self-telemetry
//! names beside ours.
//!
//! Stage: beside every stage, on each scrape. Input: [`SelfMetrics`]. Output: text exposition
//! format 0.0.4: `# HELP` (escaped: `\\`, `\n`), `# TYPE`, then samples whose label values are
//! escaped per the format (`\\`, `\"`, `\n`), so any file path or name round-trips.
//!
//! Collector names (dashboards and alerts written for Collectors work on the receiver), mapped
//! to our counters:
//! - `otelcol_receiver_accepted_spans_total{receiver="ebpf",transport="ebpf"}`: spans built
//!   that entered the export queue or were filtered/sampled out (`spans_produced` −
//!   `spans_enqueue_failed`);
//! - `otelcol_receiver_refused_spans_total{…}`: spans the full export queue refused
//!   (`spans_enqueue_failed`; as in the Collector, a full sending queue is refused upstream);
//! - `otelcol_exporter_sent_spans_total{exporter}`: `spans_exported`;
//! - `otelcol_exporter_send_failed_spans_total{exporter}`: `spans_send_failed`;
//! - `otelcol_exporter_enqueue_failed_spans_total{exporter}`: `spans_enqueue_failed`;
//! - `otelcol_exporter_queue_size{exporter}` / `_capacity{exporter}`: spans queued or in the
//!   batch being sent / `exporters.queue_size`.
//!
//! The exporter families appear once the exporter started. Counters carry `_total`, as
//! Collectors show them since their internal telemetry moved to the OTel Go SDK.
//!
//! Our own code: the format is a few lines per family; `prometheus-client` renders
//! OpenMetrics (`# EOF`, `_total` added to families, another content type), which would change
//! every existing name's exposition, and wants its own metric types instead of our atomics.
//! The tests read the output with a Prometheus text parser library.

use super::{
    ALL_KERNEL_COUNTERS, COUNTERS, KERNEL_FAMILY, KERNEL_HELP, SelfMetrics, kernel_counter_label,
};
use otel_ebpf_semconv::collector as col;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// A label value escaped for the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// A `# HELP` text escaped for the text format: `\` → `\\`, newline → `\n`.
pub fn escape_help(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

fn escape(s: &str, quotes: bool) -> Cow<'_, str> {
    let special = |c: char| c == '\\' || c == '\n' || (quotes && c == '"');
    if !s.contains(special) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Text being written; `fmt::Write` into a `String` cannot fail, so results are ignored.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = write!(
            self.0,
            "# HELP {name} {}\n# TYPE {name} {kind}\n",
            escape_help(help)
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label_value(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

impl SelfMetrics {
    /// Every self-metric in the Prometheus text exposition format 0.0.4 (serve it with content
    /// type [`super::PROMETHEUS_CONTENT_TYPE`]): our `otel_ebpf_*` families, then the
    /// Collector's `otelcol_*` ones (see the module docs).
    pub fn render_prometheus(&self) -> String {
        let mut t = Text(String::with_capacity(4096));
        for c in COUNTERS {
            t.family(c.name, c.help, "counter");
            t.sample(c.name, &[], (c.get)(self).load(Ordering::Relaxed));
        }
        t.family(KERNEL_FAMILY, KERNEL_HELP, "counter");
        for (i, counter) in ALL_KERNEL_COUNTERS.iter().enumerate() {
            let v = self.kernel_counters[i].load(Ordering::Relaxed);
            t.sample(
                KERNEL_FAMILY,
                &[("counter", kernel_counter_label(*counter))],
                v,
            );
        }
        let n = "otel_ebpf_tls_skipped_total";
        t.family(
            n,
            "Files with TLS code that cannot be traced, by reason and file.",
            "counter",
        );
        if let Ok(m) = self.tls.skipped.lock() {
            let mut rows: Vec<_> = m.iter().collect();
            rows.sort();
            for ((reason, file), v) in rows {
                t.sample(
                    n,
                    &[("reason", reason.as_str()), ("file", file.as_str())],
                    *v,
                );
            }
        }
        let n = "otel_ebpf_tls_attached_files";
        t.family(n, "Files with TLS uprobes attached now.", "gauge");
        t.sample(n, &[], self.tls.attached_files.load(Ordering::Relaxed));
        {
            use otel_ebpf_semconv::self_metric::{
                TLS_ANALYSIS_CACHE_TOTAL, TLS_EXEC_HOLDS_TOTAL, TLS_LINGERING_FILES,
            };
            let n = TLS_LINGERING_FILES;
            t.family(
                n,
                "Files whose TLS uprobes stay attached without a process using them.",
                "gauge",
            );
            t.sample(n, &[], self.tls.lingering_files.load(Ordering::Relaxed));
            t.family(
                TLS_EXEC_HOLDS_TOTAL,
                "Processes that exec'd, by what the exec gate did.",
                "counter",
            );
            for (outcome, v) in self.tls.gate.rows() {
                t.sample(TLS_EXEC_HOLDS_TOTAL, &[("outcome", outcome)], v);
            }
            t.family(
                TLS_ANALYSIS_CACHE_TOTAL,
                "On-disk TLS analysis cache lookups and writes, by outcome.",
                "counter",
            );
            for (outcome, v) in self.tls.cache.rows() {
                t.sample(TLS_ANALYSIS_CACHE_TOTAL, &[("outcome", outcome)], v);
            }
            let n = otel_ebpf_semconv::self_metric::TLS_EXEC_TIMING_MICROSECONDS;
            t.family(
                n,
                "Exec to TLS uprobes attached, and exec gate holds (microseconds).",
                "gauge",
            );
            let a = self
                .tls
                .exec_attach_us
                .lock()
                .map(|g| *g)
                .unwrap_or_default();
            let g = &self.tls.gate;
            let held = g.released.load(Ordering::Relaxed) + g.timed_out.load(Ordering::Relaxed);
            let rows = [
                ("attach", "count", a.0),
                ("attach", "sum", a.1),
                ("attach", "max", a.2),
                ("attach", "last", a.3),
                ("hold", "count", held),
                ("hold", "sum", g.hold_us_sum.load(Ordering::Relaxed)),
                ("hold", "max", g.hold_us_max.load(Ordering::Relaxed)),
                ("hold", "last", g.hold_us_last.load(Ordering::Relaxed)),
            ];
            for (what, stat, v) in rows {
                t.sample(n, &[("what", what), ("stat", stat)], v);
            }
        }
        if let Some(k) = self.kube.get() {
            use otel_ebpf_semconv::k8s::{SELF_POD_MISSES_TOTAL, SELF_WATCH_ERRORS_TOTAL};
            let rows = [
                (
                    SELF_WATCH_ERRORS_TOTAL,
                    "Kubernetes pod list/watch failures (each retry).",
                    &k.watch_errors,
                ),
                (
                    SELF_POD_MISSES_TOTAL,
                    "Containerised processes whose pod was not in the cache when looked up.",
                    &k.pod_misses,
                ),
            ];
            for (n, h, c) in rows {
                t.family(n, h, "counter");
                t.sample(n, &[], c.load(Ordering::Relaxed));
            }
        }
        let n = "otel_ebpf_kernel_timing_hook";
        t.family(
            n,
            "Kernel network timing probe plan: 1 when the point is hooked, 0 when not.",
            "gauge",
        );
        if let Ok(p) = self.net_plan.lock() {
            for (point, hook, used) in p.iter() {
                t.sample(
                    n,
                    &[("point", point.as_str()), ("hook", hook.as_str())],
                    u64::from(*used),
                );
            }
        }
        self.render_collector(&mut t);
        t.0
    }

    fn render_collector(&self, t: &mut Text) {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let refused = get(&self.spans_enqueue_failed);
        let accepted = get(&self.spans_produced).saturating_sub(refused);
        let receiver = [
            (col::LABEL_RECEIVER, col::RECEIVER_ID),
            (col::LABEL_TRANSPORT, col::TRANSPORT_EBPF),
        ];
        for (name, help, v) in [
            (
                col::RECEIVER_ACCEPTED_SPANS,
                "Number of spans successfully pushed into the pipeline.",
                accepted,
            ),
            (
                col::RECEIVER_REFUSED_SPANS,
                "Number of spans that could not be pushed into the pipeline.",
                refused,
            ),
        ] {
            t.family(name, help, "counter");
            t.sample(name, &receiver, v);
        }
        let Some(e) = self.exporter.get() else {
            return;
        };
        let exporter = [(col::LABEL_EXPORTER, e.id)];
        for (name, help, kind, v) in [
            (
                col::EXPORTER_SENT_SPANS,
                "Number of spans successfully sent to destination.",
                "counter",
                get(&self.spans_exported),
            ),
            (
                col::EXPORTER_SEND_FAILED_SPANS,
                "Number of spans in failed attempts to send to destination.",
                "counter",
                get(&self.spans_send_failed),
            ),
            (
                col::EXPORTER_ENQUEUE_FAILED_SPANS,
                "Number of spans failed to be added to the sending queue.",
                "counter",
                refused,
            ),
            (
                col::EXPORTER_QUEUE_SIZE,
                "Current size of the retry queue (in spans).",
                "gauge",
                e.queue_size.load(Ordering::Relaxed),
            ),
            (
                col::EXPORTER_QUEUE_CAPACITY,
                "Fixed capacity of the retry queue (in spans).",
                "gauge",
                e.queue_capacity,
            ),
        ] {
            t.family(name, help, kind);
            t.sample(name, &exporter, v);
        }
    }
}
