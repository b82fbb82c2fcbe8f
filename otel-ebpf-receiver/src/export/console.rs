//! Console exporter: one human-readable line per span (and per log record) on stdout.
//!
//! Stage: a sink of **export**. Input: batches of `(ProcessResource, SpanRecord)`, and log
//! export requests (their line format is in `logs`). Output, per span:
//! `<start, RFC 3339 UTC ms> <KIND> <method> <path> <status> <duration ms> <client> -> <server>
//! <service>[<pid>] trace=<id> span=<id> parent=<id>` and ` error=<error.type>` when set, e.g.
//! `2026-11-21T10:00:00.123Z SERVER GET /index.html 200 1.234ms 127.0.0.1:51234 -> 127.0.0.1:8080 nginx[1234] trace=4bf92f35 span=00f067aa parent=-`.
//! Ids are shortened to their first 8 hex digits (enough to follow a chain by eye); `<client>`
//! is the peer of a server span and the local end of a client span; `<server>` is
//! `server.address:server.port`. Missing values print as `-`.
//! Limits: writes through a buffered stdout lock, flushed once per batch; write errors (closed
//! stdout) are logged once per batch and the spans (log records) count as exported nonetheless.

use std::fmt::Write as _;
use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::Item;
use crate::enrich::ProcessResource;
use crate::protocol::Side;
use crate::span::SpanRecord;

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

/// `addr:port`, `[v6]:port`, `addr`, or `-`.
fn endpoint(out: &mut String, host: Option<impl std::fmt::Display>, port: Option<u16>) {
    let _ = match (host.map(|h| h.to_string()), port) {
        (Some(a), Some(p)) if a.contains(':') => write!(out, "[{a}]:{p}"),
        (Some(a), Some(p)) => write!(out, "{a}:{p}"),
        (Some(a), None) => write!(out, "{a}"),
        (None, Some(p)) => write!(out, "-:{p}"),
        (None, None) => write!(out, "-"),
    };
}

/// The first 4 bytes of an id as 8 lowercase hex digits.
fn short_id(out: &mut String, id: &[u8]) {
    for b in &id[..4] {
        let _ = write!(out, "{b:02x}");
    }
}

/// Appends the console line for one span (no newline) to `out`.
pub(crate) fn format_line(out: &mut String, resource: &ProcessResource, span: &SpanRecord) {
    format_timestamp(out, span.start_unix_ns);
    let ex = &span.exchange;
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let path = dash(ex.target.split(['?', '#']).next().unwrap_or(""));
    let status = ex.status.map_or_else(|| "-".into(), |c| c.to_string());
    let dur_ns = span.duration_ns();
    let kind = match span.side() {
        Side::Server => "SERVER",
        Side::Client => "CLIENT",
    };
    let _ = write!(
        out,
        " {kind} {} {path} {status} {}.{:03}ms ",
        dash(&ex.method),
        dur_ns / 1_000_000,
        (dur_ns / 1_000) % 1_000,
    );
    let (server_host, server_port) = span.server_endpoint();
    let (local, remote) = (ex.tuple.map(|t| t.local), ex.tuple.map(|t| t.remote));
    let client = match span.side() {
        Side::Server => remote,
        Side::Client => local,
    };
    endpoint(out, client.map(|c| c.ip()), client.map(|c| c.port()));
    out.push_str(" -> ");
    endpoint(out, server_host, server_port);
    let _ = write!(out, " {}[{}] trace=", resource.service_name, resource.pid);
    short_id(out, &span.trace.trace_id);
    out.push_str(" span=");
    short_id(out, &span.trace.span_id);
    out.push_str(" parent=");
    match &span.trace.parent_span_id {
        Some(p) => short_id(out, p),
        None => out.push('-'),
    }
    if let Some(err) = span.error_type() {
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
    use crate::export::tests::support::{exchange, record, resource};
    use crate::protocol::ExchangeError;

    fn line(resource: &ProcessResource, span: &SpanRecord) -> String {
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
    fn server_span_line_with_trace_ids() {
        let r = resource(1234, "nginx");
        let mut sp = record(
            exchange(Side::Server, "127.0.0.1:8080", "127.0.0.1:51234", Some(200)),
            1_795_255_200_123_000_000,
            1_234_567,
        );
        sp.trace.trace_id = [0xab; 16];
        sp.trace.span_id = [0x01; 8];
        sp.trace.parent_span_id = Some([0x2f; 8]);
        assert_eq!(
            line(&r, &sp),
            "2026-11-21T10:00:00.123Z SERVER GET /index.html 200 1.234ms \
             127.0.0.1:51234 -> 127.0.0.1:8080 nginx[1234] trace=abababab span=01010101 \
             parent=2f2f2f2f"
        );
    }

    #[test]
    fn client_span_shows_local_end_server_and_error() {
        let r = resource(77, "curl");
        let mut ex = exchange(Side::Client, "[::1]:40000", "[::1]:443", None);
        ex.method = "POST".into();
        ex.target = "/api?x=1".into();
        ex.host = None;
        ex.error = Some(ExchangeError::Timeout);
        let mut sp = record(ex, 1_000_000_000, 25_000_000_000);
        sp.trace.trace_id = [0; 16];
        sp.trace.span_id = [0xff; 8];
        assert_eq!(
            line(&r, &sp),
            "1970-01-01T00:00:01.000Z CLIENT POST /api - 25000.000ms \
             [::1]:40000 -> [::1]:443 curl[77] trace=00000000 span=ffffffff parent=- \
             error=timeout"
        );
    }

    #[test]
    fn unknown_fields_print_as_dashes() {
        let r = resource(5, "app");
        let mut ex = exchange(Side::Server, "10.0.0.2:80", "10.0.0.1:1", None);
        ex.method.clear();
        ex.target.clear();
        ex.host = None;
        ex.tuple = None;
        let mut sp = record(ex, 0, 999);
        sp.trace.trace_id = [1; 16];
        sp.trace.span_id = [2; 8];
        assert_eq!(
            line(&r, &sp),
            "1970-01-01T00:00:00.000Z SERVER - - - 0.000ms - -> - app[5] trace=01010101 \
             span=02020202 parent=-"
        );
    }

    #[test]
    fn write_to_emits_one_line_per_span() {
        let r = resource(1, "a");
        let ex = exchange(Side::Server, "127.0.0.1:80", "127.0.0.1:2", Some(200));
        let items = vec![
            (r.clone(), record(ex.clone(), 0, 2_000_000)),
            (r, record(ex, 0, 3_000_000)),
        ];
        let mut out = Vec::new();
        Console::stdout().write_to(&mut out, &items).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .all(|l| l.contains(" SERVER GET /index.html 200 "))
        );
    }
}
