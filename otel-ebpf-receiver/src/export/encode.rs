//! OTLP trace request encoding straight from [`SpanRecord`]s into protobuf bytes.
//!
//! Stage: inside **export**. Input: a batch of `(Arc<ProcessResource>, SpanRecord)`. Output:
//! the bytes of one `ExportTraceServiceRequest` (opentelemetry-proto `collector/trace/v1`):
//! one `ResourceSpans` per distinct process resource (first-seen order), each with one
//! `ScopeSpans` (scope `otel-ebpf-receiver` at this crate's version, the semconv schema URL).
//!
//! Why our own encoder: building `opentelemetry_proto` objects first costs one heap string
//! per attribute key and value (≈ 30 allocations and ≈ 2 KB per span) only to serialise and
//! drop them; here the span's attributes go from [`SpanRecord::attributes`] into the buffer.
//! Field numbers follow `opentelemetry/proto/trace/v1/trace.proto` and
//! `common/v1/common.proto`; varints and keys come from `prost::encoding`. A unit test decodes
//! the output with `opentelemetry-proto`'s prost types and compares every field.
//! Limits: resources compare by pointer first, then by value.

use crate::hash::{HashMap, HashMapExt};
use std::fmt::Write as _;
use std::sync::Arc;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::Item;
use super::batch::{SCOPE_NAME, SCOPE_VERSION};
use crate::attr::{AttrSink, Attributes};
use crate::enrich::ProcessResource;
use crate::protocol::Side;
use crate::span::SpanRecord;

/// Reusable buffers of the encoder (one per export task).
#[derive(Default)]
pub struct TraceEncoder {
    span: Vec<u8>,
    text: String,
    /// Per-resource span buffers of earlier requests, cleared (a request of 1,024 spans
    /// grew fresh ones from 512 bytes to ≈ 400 KB: ten reallocations and their page faults).
    pool: Vec<Vec<u8>>,
}

/// Most per-resource buffers kept between requests, and the largest one kept (bytes).
const POOL_BUFFERS: usize = 16;
const POOL_BUFFER_BYTES: usize = 4 << 20;

impl TraceEncoder {
    /// Encodes one `ExportTraceServiceRequest` holding `items`.
    pub fn request(&mut self, items: &[Item]) -> Vec<u8> {
        let mut groups: Vec<(&Arc<ProcessResource>, Vec<u8>)> = Vec::new();
        // pid → indexes into `groups` (usually exactly one).
        let mut by_pid: HashMap<u32, Vec<usize>> = HashMap::new();
        for (resource, span) in items {
            let candidates = by_pid.entry(resource.pid).or_default();
            let found = candidates
                .iter()
                .copied()
                .find(|&i| Arc::ptr_eq(groups[i].0, resource) || **groups[i].0 == **resource);
            let idx = found.unwrap_or_else(|| {
                candidates.push(groups.len());
                let buf = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(512));
                groups.push((resource, buf));
                groups.len() - 1
            });
            self.span.clear();
            encode_span(&mut self.span, &mut self.text, span);
            message(&mut groups[idx].1, 2, &self.span);
        }
        let mut out = Vec::with_capacity(groups.iter().map(|g| g.1.len() + 512).sum());
        let mut scope = Vec::with_capacity(64);
        string(&mut scope, 1, SCOPE_NAME);
        string(&mut scope, 2, SCOPE_VERSION);
        let mut res = Vec::with_capacity(512);
        for (resource, spans) in groups {
            res.clear();
            attributes(&mut res, 1, &resource.attributes);
            // ScopeSpans: scope (1), spans (2)…, schema_url (3).
            let schema = otel_ebpf_semconv::otel::SCHEMA_URL;
            let scope_spans_len = field_len(scope.len()) + spans.len() + field_len(schema.len());
            // ResourceSpans: resource (1), scope_spans (2).
            let resource_spans_len = field_len(res.len()) + field_len(scope_spans_len);
            header(&mut out, 1, resource_spans_len);
            message(&mut out, 1, &res);
            header(&mut out, 2, scope_spans_len);
            message(&mut out, 1, &scope);
            out.extend_from_slice(&spans);
            string(&mut out, 3, schema);
            if self.pool.len() < POOL_BUFFERS && spans.capacity() <= POOL_BUFFER_BYTES {
                let mut spans = spans;
                spans.clear();
                self.pool.push(spans);
            }
        }
        out
    }
}

/// One `Span` message body (without its own key and length).
fn encode_span(buf: &mut Vec<u8>, text: &mut String, s: &SpanRecord) {
    bytes(buf, 1, &s.trace.trace_id);
    bytes(buf, 2, &s.trace.span_id);
    if let Some(ts) = s.trace_state.as_deref().filter(|t| !t.is_empty()) {
        string(buf, 3, ts);
    }
    if let Some(p) = &s.trace.parent_span_id {
        bytes(buf, 4, p);
    }
    string(buf, 5, s.name());
    let kind = match s.side() {
        Side::Server => 2,
        Side::Client => 3,
    };
    varint(buf, 6, kind);
    fixed64(buf, 7, s.start_unix_ns);
    fixed64(buf, 8, s.end_unix_ns);
    s.attributes(&mut KeyValueWriter {
        buf,
        text,
        field: 9,
    });
    let (error, message) = s.status();
    if error || !message.is_empty() {
        // Status: message (2), code (3; 2 = STATUS_CODE_ERROR).
        let code_len = if error { 2 } else { 0 };
        let msg_len = if message.is_empty() {
            0
        } else {
            field_len(message.len())
        };
        header(buf, 15, msg_len + code_len);
        if !message.is_empty() {
            string(buf, 2, message);
        }
        if error {
            varint(buf, 3, 2);
        }
    }
    encode_key(16, WireType::ThirtyTwoBit, buf);
    buf.extend_from_slice(&s.trace.otlp_flags().to_le_bytes());
}

/// Writes `KeyValue` messages (field `field` of the enclosing message) for each attribute.
struct KeyValueWriter<'a> {
    buf: &'a mut Vec<u8>,
    text: &'a mut String,
    field: u32,
}

impl KeyValueWriter<'_> {
    /// One `KeyValue { key (1), value (2): AnyValue }` whose AnyValue body is `any_len` bytes
    /// written by `body`.
    fn kv(&mut self, key: &str, any_len: usize, body: impl FnOnce(&mut Vec<u8>)) {
        let len = field_len(key.len()) + field_len(any_len);
        header(self.buf, self.field, len);
        string(self.buf, 1, key);
        header(self.buf, 2, any_len);
        body(self.buf);
    }
}

impl AttrSink for KeyValueWriter<'_> {
    fn str(&mut self, key: &str, v: &str) {
        // AnyValue.string_value = 1
        self.kv(key, field_len(v.len()), |b| string(b, 1, v));
    }
    fn int(&mut self, key: &str, v: i64) {
        // AnyValue.int_value = 3 (varint of the two's complement)
        self.kv(key, 1 + encoded_len_varint(v as u64), |b| {
            varint(b, 3, v as u64)
        });
    }
    fn double(&mut self, key: &str, v: f64) {
        // AnyValue.double_value = 4 (fixed64)
        self.kv(key, 9, |b| fixed64(b, 4, v.to_bits()));
    }
    fn bool(&mut self, key: &str, v: bool) {
        // AnyValue.bool_value = 2
        self.kv(key, 2, |b| varint(b, 2, u64::from(v)));
    }
    fn str_array(&mut self, key: &str, v: &[String]) {
        // AnyValue.array_value = 5: ArrayValue { values (1): AnyValue { string_value (1) } }.
        let items: usize = v.iter().map(|s| field_len(field_len(s.len()))).sum();
        self.kv(key, field_len(items), |b| {
            header(b, 5, items);
            for s in v {
                header(b, 1, field_len(s.len()));
                string(b, 1, s);
            }
        });
    }
    fn int_array(&mut self, key: &str, v: &[i64]) {
        // AnyValue.array_value = 5: ArrayValue { values (1): AnyValue { int_value (3) } }.
        let any = |i: i64| 1 + encoded_len_varint(i as u64);
        let items: usize = v.iter().map(|&i| field_len(any(i))).sum();
        self.kv(key, field_len(items), |b| {
            header(b, 5, items);
            for &i in v {
                header(b, 1, any(i));
                varint(b, 3, i as u64);
            }
        });
    }
    fn display(&mut self, key: &str, v: &dyn std::fmt::Display) {
        let mut text = std::mem::take(self.text);
        text.clear();
        let _ = write!(text, "{v}");
        self.str(key, &text);
        *self.text = text;
    }
}

/// `KeyValue`s of a kept attribute list as field `field`.
fn attributes(buf: &mut Vec<u8>, field: u32, a: &Attributes) {
    let mut text = String::new();
    a.emit(&mut KeyValueWriter {
        buf,
        text: &mut text,
        field,
    });
}

/// Bytes taken by a length-delimited field of `len` bytes with a one-byte key (fields < 16).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn header(buf: &mut Vec<u8>, field: u32, len: usize) {
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn bytes(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    header(buf, field, v.len());
    buf.extend_from_slice(v);
}

fn message(buf: &mut Vec<u8>, field: u32, body: &[u8]) {
    bytes(buf, field, body);
}

fn string(buf: &mut Vec<u8>, field: u32, v: &str) {
    bytes(buf, field, v.as_bytes());
}

fn varint(buf: &mut Vec<u8>, field: u32, v: u64) {
    encode_key(field, WireType::Varint, buf);
    encode_varint(v, buf);
}

fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    encode_key(field, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
#[path = "tests/encode.rs"]
mod tests;
