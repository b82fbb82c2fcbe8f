//! Logs task and console log lines: polls the [`LogsSource`] and exports what it returns.
//!
//! Stage: the running part of **export** for log records (TCP anomalies). Input: a
//! [`LogsSource`] polled with the current time (Unix ns) every `flush_interval` and once more
//! when shutdown starts. Output: one OTLP `ExportLogsServiceRequest` per non-empty poll (the
//! request the source built, as is) and/or one console line per log record:
//! `<time, RFC 3339 UTC ms> LOG <severity> <event name> <body> service=<service.name>`, e.g.
//! `2026-11-21T10:00:00.123Z LOG WARN tcp.reset_storm 250 resets in 10s (peer 10.0.0.2)
//! service=otel-ebpf-receiver`. Self-metrics: `log_records_exported` (accepted by the backend,
//! or written to the console when there is no logs endpoint), `log_records_dropped`
//! (rejected in a partial success, or the export failed after retries), `export_failures`.
//! Limits: one request in flight, retried within [`RetrySettings`]; while it is retried the
//! source is not polled (the source bounds what it keeps). Without a logs endpoint and with
//! the console off, polled records are discarded uncounted. Control characters in bodies print
//! as spaces, so a record is always one line.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use otel_ebpf_semconv::resource::SERVICE_NAME;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::console::{Console, format_timestamp};
use super::queue::now_unix_ns;
use super::retry::{shutdown_deadline, shutdown_started, with_retry};
use super::transport::Transport;
use super::{LogsSource, RetrySettings, Shared};
use crate::telemetry::SelfMetrics;

/// The log records task.
pub(crate) struct LogsTask {
    pub source: LogsSource,
    pub console: Option<Console>,
    pub otlp: Option<Transport>,
    pub shared: Arc<Shared>,
    pub closing: watch::Receiver<Option<Instant>>,
    pub retry: RetrySettings,
    pub interval: Duration,
}

impl LogsTask {
    /// Polls every `interval`; after shutdown starts, polls and exports once more, then ends.
    pub async fn run(mut self) {
        let start = tokio::time::Instant::now() + self.interval;
        let mut tick = tokio::time::interval_at(start, self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let last = if shutdown_deadline(&self.closing).is_some() {
                true
            } else {
                tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown_started(self.closing.clone()) => true,
                }
            };
            if let Some(batch) = (self.source)(now_unix_ns()) {
                self.export(&super::otlp::logs_request(&batch)).await;
            }
            if last {
                break;
            }
        }
    }

    /// Sends one request to every sink and settles its accounting.
    async fn export(&mut self, req: &ExportLogsServiceRequest) {
        let n = record_count(req);
        if n == 0 {
            return;
        }
        let metrics = &self.shared.self_metrics;
        if let Some(console) = &mut self.console {
            console.write_logs(req);
            if self.otlp.is_none() {
                SelfMetrics::add(&metrics.log_records_exported, n);
            }
        }
        if let Some(transport) = &self.otlp {
            let result = with_retry(&self.retry, &self.closing, metrics, || {
                transport.export_logs(req)
            })
            .await;
            match result {
                Ok(rejected) => {
                    let rejected = rejected.min(n);
                    SelfMetrics::add(&metrics.log_records_exported, n - rejected);
                    SelfMetrics::add(&metrics.log_records_dropped, rejected);
                }
                Err(e) => {
                    log::warn!("dropping {n} log records: {}", e.message);
                    SelfMetrics::add(&metrics.log_records_dropped, n);
                }
            }
        }
    }
}

/// Log records in a request.
pub(crate) fn record_count(req: &ExportLogsServiceRequest) -> u64 {
    req.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

/// Severity text of a record: its own text, else the name of its `SeverityNumber` range
/// (OTel log data model, "Field: SeverityNumber"), else `-`.
fn severity(rec: &LogRecord) -> &str {
    if !rec.severity_text.is_empty() {
        return &rec.severity_text;
    }
    match rec.severity_number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "-",
    }
}

/// Appends `s` with control characters replaced by spaces; `-` when empty.
fn push_one_line(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
    }
    out.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c }));
}

/// Appends the console line of one log record (no newline) to `out`.
pub(crate) fn format_log_line(out: &mut String, resource: Option<&Resource>, rec: &LogRecord) {
    let time = match rec.time_unix_nano {
        0 => rec.observed_time_unix_nano,
        t => t,
    };
    format_timestamp(out, time);
    let _ = write!(out, " LOG {} ", severity(rec));
    push_one_line(out, &rec.event_name);
    out.push(' ');
    match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => push_one_line(out, s),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => {
            let _ = write!(out, "{d}");
        }
        Some(Value::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        _ => out.push('-'),
    }
    let service = resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVICE_NAME))
        .and_then(|kv| kv.value.as_ref()?.value.as_ref());
    out.push_str(" service=");
    match service {
        Some(Value::StringValue(s)) => push_one_line(out, s),
        _ => out.push('-'),
    }
}

/// Appends one line (with newline) per log record of `req` to `out`.
pub(crate) fn format_log_lines(out: &mut String, req: &ExportLogsServiceRequest) {
    for rl in &req.resource_logs {
        for rec in rl.scope_logs.iter().flat_map(|sl| &sl.log_records) {
            format_log_line(out, rl.resource.as_ref(), rec);
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::support::{kv_s, logs_request};
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    fn record(event: &str, body: Option<Value>) -> LogRecord {
        LogRecord {
            time_unix_nano: 1_795_255_200_123_000_000,
            severity_number: 13,
            severity_text: "WARN".into(),
            event_name: event.into(),
            body: body.map(|v| AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn line(resource: Option<&Resource>, rec: &LogRecord) -> String {
        let mut s = String::new();
        format_log_line(&mut s, resource, rec);
        s
    }

    #[test]
    fn anomaly_line() {
        let res = Resource {
            attributes: vec![kv_s("service.name", "otel-ebpf-receiver")],
            ..Default::default()
        };
        let rec = record(
            "tcp.reset_storm",
            Some(Value::StringValue(
                "250 resets in 10s (peer 10.0.0.2)".into(),
            )),
        );
        assert_eq!(
            line(Some(&res), &rec),
            "2026-11-21T10:00:00.123Z LOG WARN tcp.reset_storm 250 resets in 10s \
             (peer 10.0.0.2) service=otel-ebpf-receiver"
        );
    }

    #[test]
    fn missing_fields_print_as_dashes_and_severity_falls_back_to_the_number() {
        let mut rec = record("", None);
        rec.time_unix_nano = 0;
        rec.observed_time_unix_nano = 1_000_000_000;
        rec.severity_text.clear();
        rec.severity_number = 17;
        assert_eq!(
            line(None, &rec),
            "1970-01-01T00:00:01.000Z LOG ERROR - - service=-"
        );
        rec.severity_number = 99;
        rec.body = Some(AnyValue {
            value: Some(Value::IntValue(-3)),
        });
        assert_eq!(
            line(None, &rec),
            "1970-01-01T00:00:01.000Z LOG - - -3 service=-"
        );
    }

    #[test]
    fn control_characters_never_break_the_line() {
        let rec = record("a\nb", Some(Value::StringValue("x\r\ny\tz\u{7}".into())));
        let s = line(None, &rec);
        assert!(!s.contains(['\n', '\r', '\t', '\u{7}']), "{s:?}");
        assert!(s.ends_with(" LOG WARN a b x  y z  service=-"), "{s:?}");
    }

    #[test]
    fn one_line_per_record_across_resources() {
        let req = logs_request(&[("svc-a", &["r1", "r2"]), ("svc-b", &["r3"])]);
        assert_eq!(record_count(&req), 3);
        let mut s = String::new();
        format_log_lines(&mut s, &req);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3, "{s}");
        assert!(lines[0].ends_with("LOG WARN test.event r1 service=svc-a"));
        assert!(lines[1].ends_with("LOG WARN test.event r2 service=svc-a"));
        assert!(lines[2].ends_with("LOG WARN test.event r3 service=svc-b"));
        assert_eq!(record_count(&ExportLogsServiceRequest::default()), 0);
    }
}
