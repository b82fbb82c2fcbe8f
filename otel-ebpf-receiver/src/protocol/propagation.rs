//! Trace context carried in request headers: W3C Trace Context and B3.
//!
//! Stage: protocol (inner step, shared by HTTP/1 and HTTP/2). Input: header name/value pairs
//! of one request, one at a time ([`Collector::header`]). Output: a [`Propagated`] context —
//! trace id, the sender's span id, the sampled flag and `tracestate` — or an error (counted by
//! the caller, never fatal). Sources: W3C Trace Context Level 1 §3.2 (`traceparent`) and §3.3
//! (`tracestate`); OpenZipkin b3-propagation (single `b3` header, multi `X-B3-*` headers).
//! `traceparent` wins over B3 when both are present.
//!
//! Limits: values are checked byte by byte, never allocated except `tracestate` (kept as
//! received, at most [`MAX_TRACESTATE_BYTES`]; longer values are dropped, per §3.3.1.1 a
//! vendor may truncate). Header names compare case-insensitively. Pure code, no IO.

use serde::{Deserialize, Serialize};

/// Longest `tracestate` kept (bytes; W3C Trace Context §3.3.1.1 asks to propagate at least
/// 512).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// A trace context a request carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propagated {
    /// Non-zero trace id (a 64-bit B3 id is left-padded with zeros).
    pub trace_id: [u8; 16],
    /// Non-zero span id of the sender's span (the parent of the span this request causes).
    pub span_id: [u8; 8],
    /// The sampled flag (`traceparent` flags bit 0; B3 `1`/`d`/`true`); `None` when B3 left
    /// the decision open.
    pub sampled: Option<bool>,
    /// `tracestate` as received.
    pub trace_state: Option<Box<str>>,
}

/// Why a header value was not a valid context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PropagationError {
    /// `traceparent` malformed (length, hex, separators, all-zero ids, version `ff`).
    #[error("malformed traceparent")]
    TraceParent,
    /// `b3` or `X-B3-*` malformed, or ids given without their pair.
    #[error("malformed b3")]
    B3,
}

/// A valid `traceparent`: trace id, parent id, sampled.
type TraceParent = ([u8; 16], [u8; 8], bool);

/// Collects the propagation headers of one request.
#[derive(Debug, Default)]
pub struct Collector {
    traceparent: Option<Result<TraceParent, PropagationError>>,
    trace_state: Option<Box<str>>,
    b3: Option<Result<Option<Propagated>, PropagationError>>,
    b3_trace: Option<[u8; 16]>,
    b3_span: Option<[u8; 8]>,
    b3_sampled: Option<bool>,
    b3_bad: bool,
}

impl Collector {
    /// Offers one header; names other than the propagation headers are ignored.
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        let value = trim(value);
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("traceparent") {
            self.traceparent = Some(traceparent(value));
        } else if is("tracestate") {
            if value.len() <= MAX_TRACESTATE_BYTES
                && let Ok(s) = std::str::from_utf8(value)
                && !s.is_empty()
            {
                self.trace_state = Some(s.into());
            }
        } else if is("b3") {
            self.b3 = Some(b3_single(value));
        } else if is("x-b3-traceid") {
            match trace_id(value) {
                Some(t) => self.b3_trace = Some(t),
                None => self.b3_bad = true,
            }
        } else if is("x-b3-spanid") {
            match hex::<8>(value).filter(|s| *s != [0; 8]) {
                Some(s) => self.b3_span = Some(s),
                None => self.b3_bad = true,
            }
        } else if is("x-b3-sampled") {
            match value {
                b"1" | b"true" => self.b3_sampled = Some(true),
                b"0" | b"false" => self.b3_sampled = Some(false),
                _ => self.b3_bad = true,
            }
        } else if is("x-b3-flags") && value == b"1" {
            self.b3_sampled = Some(true); // debug implies sampled
        }
    }

    /// True when a propagation header was seen (valid or not).
    pub fn seen(&self) -> bool {
        self.traceparent.is_some()
            || self.b3.is_some()
            || self.b3_trace.is_some()
            || self.b3_span.is_some()
            || self.b3_bad
    }

    /// The context, `Ok(None)` when the request carried none, or the first error (the caller
    /// counts it; a valid `traceparent` still wins over a malformed B3 header).
    pub fn finish(self) -> Result<Option<Propagated>, PropagationError> {
        match self.traceparent {
            Some(Ok((trace_id, span_id, sampled))) => {
                return Ok(Some(Propagated {
                    trace_id,
                    span_id,
                    sampled: Some(sampled),
                    trace_state: self.trace_state,
                }));
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        if let Some(single) = self.b3 {
            return single;
        }
        if self.b3_bad {
            return Err(PropagationError::B3);
        }
        match (self.b3_trace, self.b3_span) {
            (Some(trace_id), Some(span_id)) => Ok(Some(Propagated {
                trace_id,
                span_id,
                sampled: self.b3_sampled,
                trace_state: None,
            })),
            (None, None) => Ok(None),
            _ => Err(PropagationError::B3),
        }
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// `N` bytes from exactly `2N` lowercase hex digits.
fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(out)
}

/// A B3 trace id: 16 or 32 lowercase hex digits, not all zero.
fn trace_id(s: &[u8]) -> Option<[u8; 16]> {
    let id = match s.len() {
        16 => {
            let low = hex::<8>(s)?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            id
        }
        _ => hex::<16>(s)?,
    };
    (id != [0; 16]).then_some(id)
}

/// `version "-" trace-id "-" parent-id "-" trace-flags` (W3C Trace Context §3.2.2).
fn traceparent(v: &[u8]) -> Result<TraceParent, PropagationError> {
    let err = PropagationError::TraceParent;
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(err);
    }
    let version = hex::<1>(&v[..2]).ok_or(err)?[0];
    // Version 00 is exactly 55 bytes; a later version may append "-…" (§3.2.4).
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return Err(err);
    }
    let trace = hex::<16>(&v[3..35]).filter(|t| *t != [0; 16]).ok_or(err)?;
    let span = hex::<8>(&v[36..52]).filter(|s| *s != [0; 8]).ok_or(err)?;
    let flags = hex::<1>(&v[53..55]).ok_or(err)?[0];
    Ok((trace, span, flags & 1 == 1))
}

/// `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`; a bare sampling state
/// (`0`, `1`, `d`) is valid but carries no context (`Ok(None)`).
fn b3_single(v: &[u8]) -> Result<Option<Propagated>, PropagationError> {
    let err = PropagationError::B3;
    if matches!(v, b"0" | b"1" | b"d") {
        return Ok(None);
    }
    let mut parts = v.split(|&b| b == b'-');
    let first = parts.next().ok_or(err)?;
    let span = parts.next().ok_or(err)?;
    let trace_id = trace_id(first).ok_or(err)?;
    let span_id = hex::<8>(span).filter(|s| *s != [0; 8]).ok_or(err)?;
    let sampled = match parts.next() {
        None => None,
        Some(b"1" | b"d") => Some(true),
        Some(b"0") => Some(false),
        Some(_) => return Err(err),
    };
    if let Some(parent) = parts.next() {
        hex::<8>(parent).ok_or(err)?;
    }
    if parts.next().is_some() {
        return Err(err);
    }
    Ok(Some(Propagated {
        trace_id,
        span_id,
        sampled,
        trace_state: None,
    }))
}

#[cfg(test)]
#[path = "propagation_tests.rs"]
mod tests;
