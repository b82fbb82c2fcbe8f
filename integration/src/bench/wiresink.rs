//! A counting OTLP/HTTP sink for the benchmark that walks the protobuf wire format without
//! decoding it into objects: per span it reads only `kind` (field 6) and the `server.port`
//! attribute (field 9). A tonic/prost sink that builds OTLP objects costs ≈ 4.5 µs per span on
//! the same cores as the system under test, more than what is measured; this one costs a
//! fraction of a µs, and it measures its own CPU time (thread CPU clock) so the benchmark
//! prints it next to the receiver's.
//!
//! Input: `POST /v1/traces|metrics|logs` over HTTP/1.1 keep-alive, uncompressed protobuf,
//! `Content-Length` bodies (what the receiver's `http/protobuf` exporter sends). Output:
//! counts by (span kind, `server.port`), requests and bytes. Limits: no chunked bodies, no
//! gzip; malformed protobuf is counted (`malformed`) and skipped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    counts: Mutex<HashMap<(i32, i64), u64>>,
    cpu_ns: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    malformed: AtomicU64,
}

/// The sink; listens on 127.0.0.1 until the process ends.
pub struct WireSink {
    addr: SocketAddr,
    st: Arc<State>,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl WireSink {
    pub fn start() -> std::io::Result<Self> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let st = Arc::new(State::default());
        let s = st.clone();
        std::thread::Builder::new()
            .name("wire-sink".into())
            .spawn(move || {
                for c in l.incoming().flatten() {
                    let s = s.clone();
                    let _ = std::thread::Builder::new()
                        .name("wire-sink-conn".into())
                        .spawn(move || serve(c, &s));
                }
            })?;
        Ok(Self { addr, st })
    }

    /// Base URL for `exporters.otlp.endpoint` (http/protobuf).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spans received of `kind` (2 SERVER, 3 CLIENT) with `server.port` = `port`.
    pub fn count(&self, kind: i32, port: u16) -> u64 {
        let c = self.st.counts.lock().unwrap();
        c.get(&(kind, port as i64)).copied().unwrap_or(0)
    }

    /// CPU time the sink has used (s).
    pub fn cpu_seconds(&self) -> f64 {
        self.st.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Malformed bodies seen.
    pub fn malformed(&self) -> u64 {
        self.st.malformed.load(Ordering::Relaxed)
    }
}

fn serve(c: TcpStream, st: &State) {
    let mut last = thread_cpu_ns();
    let mut w = match c.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::with_capacity(1 << 16, c);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        // Request line and headers.
        let mut len = 0usize;
        let mut traces = false;
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        traces = traces || line.contains("/v1/traces");
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let t = line.trim_end();
            if t.is_empty() {
                break;
            }
            if let Some((k, v)) = t.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        body.resize(len, 0);
        if r.read_exact(&mut body).is_err() {
            break;
        }
        if traces {
            let mut local: HashMap<(i32, i64), u64> = HashMap::new();
            if walk_request(&body, &mut local).is_none() {
                st.malformed.fetch_add(1, Ordering::Relaxed);
            }
            let mut c = st.counts.lock().unwrap();
            for (k, n) in local {
                *c.entry(k).or_default() += n;
            }
        }
        st.requests.fetch_add(1, Ordering::Relaxed);
        st.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
        let now = thread_cpu_ns();
        st.cpu_ns.fetch_add(now - last, Ordering::Relaxed);
        last = now;
    }
    let now = thread_cpu_ns();
    st.cpu_ns
        .fetch_add(now.saturating_sub(last), Ordering::Relaxed);
}

enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*i)?;
        *i += 1;
        v |= ((x & 0x7f) as u64) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Calls `f(field, value)` for each field of message `b`; `None` when malformed.
fn fields<'a>(b: &'a [u8], mut f: impl FnMut(u64, Val<'a>) -> Option<()>) -> Option<()> {
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let v = match key & 7 {
            0 => Val::Int(varint(b, &mut i)?),
            1 => {
                i += 8;
                Val::Int(0)
            }
            2 => {
                let n = varint(b, &mut i)? as usize;
                let s = b.get(i..i.checked_add(n)?)?;
                i += n;
                Val::Bytes(s)
            }
            5 => {
                i += 4;
                Val::Int(0)
            }
            _ => return None,
        };
        if i > b.len() {
            return None;
        }
        f(key >> 3, v)?;
    }
    Some(())
}

/// ExportTraceServiceRequest → ResourceSpans(1) → ScopeSpans(2) → Span(2).
fn walk_request(b: &[u8], out: &mut HashMap<(i32, i64), u64>) -> Option<()> {
    fields(b, |n, v| match (n, v) {
        (1, Val::Bytes(rs)) => fields(rs, |n, v| match (n, v) {
            (2, Val::Bytes(ss)) => fields(ss, |n, v| match (n, v) {
                (2, Val::Bytes(span)) => {
                    let k = span_key(span)?;
                    *out.entry(k).or_default() += 1;
                    Some(())
                }
                _ => Some(()),
            }),
            _ => Some(()),
        }),
        _ => Some(()),
    })
}

/// (kind, `server.port`) of one Span message (port -1 when absent).
fn span_key(span: &[u8]) -> Option<(i32, i64)> {
    let (mut kind, mut port) = (0i32, -1i64);
    fields(span, |n, v| {
        match (n, v) {
            (6, Val::Int(k)) => kind = k as i32,
            (9, Val::Bytes(kv)) => {
                let (mut is_port, mut val) = (false, None);
                fields(kv, |n, v| {
                    match (n, v) {
                        (1, Val::Bytes(k)) => is_port = k == b"server.port",
                        (2, Val::Bytes(any)) => {
                            fields(any, |n, v| {
                                if let (3, Val::Int(x)) = (n, v) {
                                    val = Some(x as i64);
                                }
                                Some(())
                            })?;
                        }
                        _ => {}
                    }
                    Some(())
                })?;
                if is_port && let Some(p) = val {
                    port = p;
                }
            }
            _ => {}
        }
        Some(())
    })?;
    Some((kind, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn span(kind: i32, port: Option<i64>) -> Span {
        let mut attributes = vec![KeyValue {
            key: "http.request.method".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("GET".into())),
            }),
            ..Default::default()
        }];
        if let Some(p) = port {
            attributes.push(KeyValue {
                key: "server.port".into(),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(p)),
                }),
                ..Default::default()
            });
        }
        Span {
            name: "GET".into(),
            kind,
            attributes,
            ..Default::default()
        }
    }

    #[test]
    fn counts_spans_by_kind_and_port_as_prost_encodes_them() {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span(2, Some(8080)),
                        span(3, Some(8080)),
                        span(2, Some(8080)),
                        span(2, None),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut out = HashMap::new();
        walk_request(&req.encode_to_vec(), &mut out).unwrap();
        assert_eq!(out.get(&(2, 8080)), Some(&2));
        assert_eq!(out.get(&(3, 8080)), Some(&1));
        assert_eq!(out.get(&(2, -1)), Some(&1));
        // Truncated input is malformed, not a panic.
        let b = req.encode_to_vec();
        assert!(walk_request(&b[..b.len() - 3], &mut HashMap::new()).is_none());
    }
}
