//! Console exporter: one human-readable line per span (and per log record) on stdout.
//!
//! Stage: a sink of **export**. Input: batches of `(ProcessResource, Span)`, and log export
//! requests (their line format is in `logs`). Output, per span:
//! `<start, RFC 3339 UTC ms> <KIND> <method> <path> <status> <duration ms> <client> -> <server>
//! <service>[<pid>]` and ` error=<error.type>` when set, e.g.
//! `2026-11-21T10:00:00.123Z SERVER GET /index.html 200 1.234ms 127.0.0.1:51234 -> 127.0.0.1:8080 nginx[1234]`.
//! Missing values print as `-`. Attribute names: OTel HTTP semantic conventions
//! (`http.request.method`, `url.path`, `http.response.status_code`, `client.*`, `server.*`,
//! `network.peer.*`, `network.local.*`, `error.type`).
//! Limits: writes through a buffered stdout lock, flushed once per batch; write errors (closed
//! stdout) are logged once per batch and the spans (log records) count as exported nonetheless.

use std::fmt::Write as _;
use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use otel_ebpf_semconv::otel::attribute as attr;

use super::Item;
use crate::enrich::ProcessResource;

/// Writes span and log record lines to stdout.
pub(crate) struct Console {
    line: String,
    sink: Sink,
}

enum Sink {
    Stdout,
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>),
}

impl Console {
    pub fn stdout() -> Self {
        Self {
            line: String::with_capacity(256),
            sink: Sink::Stdout,
        }
    }

    /// A console writing into a shared buffer (tests).
    #[cfg(test)]
    pub fn memory(buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> Self {
        Self {
            line: String::new(),
            sink: Sink::Memory(buf),
        }
    }

    /// Another console writing to the same place (the logs task owns its own).
    pub fn duplicate(&self) -> Self {
        let sink = match &self.sink {
            Sink::Stdout => Sink::Stdout,
            #[cfg(test)]
            Sink::Memory(buf) => Sink::Memory(buf.clone()),
        };
        Self {
            line: String::with_capacity(256),
            sink,
        }
    }

    /// Writes one line per span to stdout and flushes.
    pub fn write_batch(&mut self, items: &[Item]) {
        self.emit(|line, out| write_spans(line, out, items));
    }

    /// Writes one line per log record to stdout and flushes.
    pub fn write_logs(&mut self, req: &ExportLogsServiceRequest) {
        self.emit(|line, out| {
            line.clear();
            super::logs::format_log_lines(line, req);
            out.write_all(line.as_bytes())
        });
    }

    /// Runs `write` on the sink (with the reusable line buffer), flushes, logs an error.
    fn emit(&mut self, write: impl FnOnce(&mut String, &mut dyn Write) -> std::io::Result<()>) {
        let Self { line, sink } = self;
        let result = match sink {
            Sink::Stdout => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
                write(line, &mut out).and_then(|_| out.flush())
            }
            #[cfg(test)]
            Sink::Memory(buf) => {
                let buf = buf.clone();
                let mut out = buf.lock().unwrap();
                write(line, &mut *out)
            }
        };
        if let Err(e) = result {
            log::warn!("console exporter: cannot write to stdout: {e}");
        }
    }

    /// Writes one line per span to `out` (no flush).
    #[cfg(test)]
    pub fn write_to(&mut self, out: &mut dyn Write, items: &[Item]) -> std::io::Result<()> {
        write_spans(&mut self.line, out, items)
    }
}

/// Writes one line per span to `out`, using `line` as the buffer.
fn write_spans(line: &mut String, out: &mut dyn Write, items: &[Item]) -> std::io::Result<()> {
    for (resource, span) in items {
        line.clear();
        format_line(line, resource, span);
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

fn attr_value<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn attr_string(span: &Span, key: &str) -> Option<String> {
    match attr_value(span, key)? {
        Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// `addr:port`, `[v6]:port`, `addr`, or `-`.
fn endpoint(span: &Span, addr_keys: &[&str], port_keys: &[&str]) -> String {
    let addr = addr_keys.iter().find_map(|k| attr_string(span, k));
    let port = port_keys.iter().find_map(|k| attr_string(span, k));
    match (addr, port) {
        (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
        (Some(a), Some(p)) => format!("{a}:{p}"),
        (Some(a), None) => a,
        (None, Some(p)) => format!("-:{p}"),
        (None, None) => "-".into(),
    }
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Unspecified => "UNSPECIFIED",
        SpanKind::Internal => "INTERNAL",
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
    }
}

/// Appends the console line for one span (no newline) to `out`.
pub(crate) fn format_line(out: &mut String, resource: &ProcessResource, span: &Span) {
    format_timestamp(out, span.start_time_unix_nano);
    let dash = || "-".to_string();
    let method = attr_string(span, attr::HTTP_REQUEST_METHOD).unwrap_or_else(dash);
    let path = attr_string(span, attr::URL_PATH).unwrap_or_else(dash);
    let status = attr_string(span, attr::HTTP_RESPONSE_STATUS_CODE).unwrap_or_else(dash);
    let dur_ns = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano);
    let (client, server) = if span.kind == SpanKind::Client as i32 {
        // We are the client: the peer is the server, the local socket the client.
        (
            endpoint(
                span,
                &[attr::CLIENT_ADDRESS, attr::NETWORK_LOCAL_ADDRESS],
                &[attr::CLIENT_PORT, attr::NETWORK_LOCAL_PORT],
            ),
            endpoint(
                span,
                &[attr::SERVER_ADDRESS, attr::NETWORK_PEER_ADDRESS],
                &[attr::SERVER_PORT, attr::NETWORK_PEER_PORT],
            ),
        )
    } else {
        (
            endpoint(
                span,
                &[attr::CLIENT_ADDRESS, attr::NETWORK_PEER_ADDRESS],
                &[attr::CLIENT_PORT, attr::NETWORK_PEER_PORT],
            ),
            endpoint(
                span,
                &[attr::SERVER_ADDRESS, attr::NETWORK_LOCAL_ADDRESS],
                &[attr::SERVER_PORT, attr::NETWORK_LOCAL_PORT],
            ),
        )
    };
    let _ = write!(
        out,
        " {} {method} {path} {status} {}.{:03}ms {client} -> {server} {}[{}]",
        kind_name(span.kind),
        dur_ns / 1_000_000,
        (dur_ns / 1_000) % 1_000,
        resource.service_name,
        resource.pid,
    );
    if let Some(err) = attr_string(span, attr::ERROR_TYPE) {
        let _ = write!(out, " error={err}");
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) for Unix-epoch nanoseconds.
pub(crate) fn format_timestamp(out: &mut String, unix_ns: u64) {
    let secs = unix_ns / 1_000_000_000;
    let ms = (unix_ns / 1_000_000) % 1_000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm,
/// <https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::support::{http_span, kv_i, kv_s, resource};

    fn line(resource: &ProcessResource, span: &Span) -> String {
        let mut s = String::new();
        format_line(&mut s, resource, span);
        s
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let mut s = String::new();
        format_timestamp(&mut s, 0);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        // 2026-11-21T10:00:00.123Z
        format_timestamp(&mut s, 1_795_255_200_123_456_789);
        assert_eq!(s, "2026-11-21T10:00:00.123Z");
        s.clear();
        // Leap day.
        format_timestamp(&mut s, 951_782_400_000_000_000);
        assert_eq!(s, "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn server_span_line() {
        let r = resource(1234, "nginx");
        let mut sp = http_span(SpanKind::Server, 1_795_255_200_123_000_000, 1_234_567);
        sp.attributes = vec![
            kv_s("http.request.method", "GET"),
            kv_s("url.path", "/index.html"),
            kv_i("http.response.status_code", 200),
            kv_s("client.address", "127.0.0.1"),
            kv_i("client.port", 51234),
            kv_s("server.address", "127.0.0.1"),
            kv_i("server.port", 8080),
        ];
        assert_eq!(
            line(&r, &sp),
            "2026-11-21T10:00:00.123Z SERVER GET /index.html 200 1.234ms \
             127.0.0.1:51234 -> 127.0.0.1:8080 nginx[1234]"
        );
    }

    #[test]
    fn client_span_uses_peer_as_server_and_shows_error() {
        let r = resource(77, "curl");
        let mut sp = http_span(SpanKind::Client, 1_000_000_000, 25_000_000_000);
        sp.attributes = vec![
            kv_s("http.request.method", "POST"),
            kv_s("url.path", "/api"),
            kv_s("network.peer.address", "::1"),
            kv_i("network.peer.port", 443),
            kv_s("network.local.address", "::1"),
            kv_i("network.local.port", 40000),
            kv_s("error.type", "timeout"),
        ];
        assert_eq!(
            line(&r, &sp),
            "1970-01-01T00:00:01.000Z CLIENT POST /api - 25000.000ms \
             [::1]:40000 -> [::1]:443 curl[77] error=timeout"
        );
    }

    #[test]
    fn server_span_falls_back_to_network_peer_and_dashes() {
        let r = resource(5, "app");
        let mut sp = http_span(SpanKind::Server, 0, 999);
        sp.attributes = vec![
            kv_s("network.peer.address", "10.0.0.1"),
            kv_i("network.peer.port", 1),
        ];
        assert_eq!(
            line(&r, &sp),
            "1970-01-01T00:00:00.000Z SERVER - - - 0.000ms 10.0.0.1:1 -> - app[5]"
        );
    }

    #[test]
    fn write_to_emits_one_line_per_span() {
        let r = resource(1, "a");
        let items = vec![
            (r.clone(), http_span(SpanKind::Server, 0, 2_000_000)),
            (r, http_span(SpanKind::Internal, 0, 3_000_000)),
        ];
        let mut out = Vec::new();
        Console::stdout().write_to(&mut out, &items).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:00.000Z SERVER - - - 2.000ms - -> - a[1]\n\
             1970-01-01T00:00:00.000Z INTERNAL - - - 3.000ms - -> - a[1]\n"
        );
    }
}
