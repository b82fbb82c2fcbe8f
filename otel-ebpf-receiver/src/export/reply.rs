//! What an OTLP backend answered: accepted (with how many items it rejected), retry (after how
//! long), or give up.
//!
//! Stage: **export**. Input: the parts of a reply a backend controls — an OTLP/HTTP status
//! code, headers (`Retry-After`) and body (an `Export*ServiceResponse` with its partial
//! success, or a `google.rpc.Status`), or the headers/trailers of a gRPC reply (`grpc-status`,
//! `grpc-message`, parsed by tonic). Output: a [`Reply`]. Limits: messages are cut to
//! [`MAX_MESSAGE_CHARS`] characters (they go into logs), `Retry-After` is clamped to
//! [`MAX_RETRY_AFTER`] (1 h), a negative rejected count is 0. Malformed replies never panic:
//! an undecodable success body is a permanent error, a non-numeric `grpc-status` is UNKNOWN.
//! Sources: OTLP spec "OTLP/HTTP Response", "Retryable Response Codes", "OTLP/HTTP
//! Throttling"; gRPC over HTTP/2 (`grpc-status`, percent-encoded `grpc-message`). Pure code,
//! no IO (a partial success is logged).

use std::time::Duration;

use hyper::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::Code;

use super::Signal;

/// Longest server-suggested delay (`Retry-After`) taken as is; longer ones are clamped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Most characters of a backend's message kept (the rest is cut, `…` appended).
pub const MAX_MESSAGE_CHARS: usize = 256;

/// A backend's answer to one export request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Accepted; `rejected` items (spans, data points, log records) refused by a partial
    /// success.
    Accepted { rejected: u64 },
    /// Try again, after `after` when the backend said so (clamped to [`MAX_RETRY_AFTER`]).
    Retry {
        after: Option<Duration>,
        message: String,
    },
    /// Do not retry.
    Permanent { message: String },
}

/// Classifies an OTLP/HTTP reply: `status` code, its headers as (name, value) bytes (invalid
/// ones ignored) and body, for an export of `signal`.
pub fn http_reply(status: u16, headers: &[(&[u8], &[u8])], body: &[u8], signal: Signal) -> Reply {
    if (200..300).contains(&status) {
        let partial = match signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body).map(|r| {
                r.partial_success
                    .map(|p| (p.rejected_spans, p.error_message))
            }),
            Signal::Metrics => ExportMetricsServiceResponse::decode(body).map(|r| {
                r.partial_success
                    .map(|p| (p.rejected_data_points, p.error_message))
            }),
            Signal::Logs => ExportLogsServiceResponse::decode(body).map(|r| {
                r.partial_success
                    .map(|p| (p.rejected_log_records, p.error_message))
            }),
        };
        return match partial {
            Ok(p) => Reply::Accepted {
                rejected: p.map_or(0, |(n, msg)| rejected(n, &msg, signal)),
            },
            Err(e) => Reply::Permanent {
                message: cut(&format!("HTTP {status}: undecodable response: {e}")),
            },
        };
    }
    let detail = RpcStatus::decode(body)
        .ok()
        .filter(|s| !s.message.is_empty())
        .map(|s| s.message)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE_CHARS)]).into_owned()
        });
    let message = cut(&format!("HTTP {status}: {detail}"));
    if matches!(status, 429 | 502 | 503 | 504) {
        let after = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"retry-after"))
            .and_then(|(_, v)| retry_after(v));
        Reply::Retry { after, message }
    } else {
        Reply::Permanent { message }
    }
}

/// `google.rpc.Status` as an OTLP/HTTP error body carries it (code, message; details skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// `Retry-After: <seconds>` (the HTTP-date form is ignored), clamped to [`MAX_RETRY_AFTER`].
pub fn retry_after(v: &[u8]) -> Option<Duration> {
    let s = std::str::from_utf8(v).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: too many of them is simply "very long".
    let secs = s.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Classifies a gRPC reply from its headers or trailers (`grpc-status`, `grpc-message`, as
/// (name, value) bytes; invalid ones ignored). No `grpc-status`: accepted.
pub fn grpc_reply(headers: &[(&[u8], &[u8])]) -> Reply {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k), HeaderValue::from_bytes(v)) {
            map.append(k, v);
        }
    }
    match tonic::Status::from_header_map(&map) {
        Some(s) if s.code() != Code::Ok => grpc_status(s.code(), s.message()),
        _ => Reply::Accepted { rejected: 0 },
    }
}

/// Classifies a failed gRPC call by its status `code` and `message`.
pub fn grpc_status(code: Code, message: &str) -> Reply {
    let message = cut(&format!("gRPC {code:?}: {message}"));
    if is_retryable_grpc(code) {
        Reply::Retry {
            after: None,
            message,
        }
    } else {
        Reply::Permanent { message }
    }
}

/// Retryable gRPC codes per the OTLP spec (RESOURCE_EXHAUSTED included: collectors use it for
/// back-pressure).
pub fn is_retryable_grpc(code: Code) -> bool {
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Items a partial success rejected (a negative count is 0); logged when not empty.
pub fn rejected(count: i64, message: &str, signal: Signal) -> u64 {
    let unit = match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "data points",
        Signal::Logs => "log records",
    };
    if count > 0 || !message.is_empty() {
        log::warn!("backend rejected {count} {unit}: {}", cut(message));
    }
    count.max(0) as u64
}

/// `s` cut to [`MAX_MESSAGE_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_extremes_are_clamped_never_overflow() {
        assert_eq!(retry_after(b"7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(b" 0 "), Some(Duration::ZERO));
        assert_eq!(retry_after(b"18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&[b'9'; 400]), Some(MAX_RETRY_AFTER));
        for bad in [
            &b""[..],
            b"-1",
            b"1.5",
            b"+3",
            b"Wed, 21 Oct 2015 07:28:00 GMT",
            b"\xff",
        ] {
            assert_eq!(retry_after(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_statuses_follow_the_spec() {
        let h: [(&[u8], &[u8]); 1] = [(b"Retry-After", b"99999999")];
        assert_eq!(
            http_reply(503, &h, b"down", Signal::Traces),
            Reply::Retry {
                after: Some(MAX_RETRY_AFTER),
                message: "HTTP 503: down".into()
            }
        );
        let retryable: Vec<u16> = (100..600)
            .filter(|&s| matches!(http_reply(s, &[], b"", Signal::Logs), Reply::Retry { .. }))
            .collect();
        assert_eq!(retryable, vec![429, 502, 503, 504]);
        assert_eq!(
            http_reply(200, &[], b"", Signal::Metrics),
            Reply::Accepted { rejected: 0 }
        );
        assert!(matches!(
            http_reply(200, &[], b"\xff\xff", Signal::Metrics),
            Reply::Permanent { .. }
        ));
        let partial = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: -5,
                    error_message: "x".into(),
                },
            ),
        };
        assert_eq!(
            http_reply(200, &[], &partial.encode_to_vec(), Signal::Traces),
            Reply::Accepted { rejected: 0 }
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let body = RpcStatus {
            code: 8,
            message: "é".repeat(100_000),
        }
        .encode_to_vec();
        let Reply::Permanent { message } = http_reply(400, &[], &body, Signal::Traces) else {
            panic!()
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        let h: [(&[u8], &[u8]); 2] = [(b"grpc-status", b"14"), (b"grpc-message", &[b'a'; 10_000])];
        let Reply::Retry { message, .. } = grpc_reply(&h) else {
            panic!()
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn grpc_status_and_percent_encoded_message() {
        let h: [(&[u8], &[u8]); 2] = [(b"grpc-status", b"8"), (b"grpc-message", b"slow%20down")];
        assert_eq!(
            grpc_reply(&h),
            Reply::Retry {
                after: None,
                message: "gRPC ResourceExhausted: slow down".into()
            }
        );
        let h: [(&[u8], &[u8]); 1] = [(b"grpc-status", b"3")];
        assert!(matches!(grpc_reply(&h), Reply::Permanent { .. }));
        let h: [(&[u8], &[u8]); 1] = [(b"grpc-status", b"0")];
        assert_eq!(grpc_reply(&h), Reply::Accepted { rejected: 0 });
        assert_eq!(grpc_reply(&[]), Reply::Accepted { rejected: 0 });
        let h: [(&[u8], &[u8]); 1] = [(b"grpc-status", b"banana")];
        assert!(matches!(grpc_reply(&h), Reply::Permanent { .. }));
        let retryable: Vec<Code> = (0..=16)
            .map(Code::from_i32)
            .filter(|c| is_retryable_grpc(*c))
            .collect();
        assert_eq!(
            retryable,
            vec![
                Code::Cancelled,
                Code::DeadlineExceeded,
                Code::ResourceExhausted,
                Code::Aborted,
                Code::OutOfRange,
                Code::Unavailable,
                Code::DataLoss
            ]
        );
    }

    /// The fuzz target's invariants over 20,000 seeded arbitrary replies (CI runs unit tests;
    /// cargo-fuzz runs the target itself).
    #[test]
    fn arbitrary_replies_keep_the_invariants() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789:-%\n grpc-statusmessageRetry-After\xff\x00";
        for _ in 0..20_000 {
            let len = (next() % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let status = 100 + (next() % 500) as u16;
            let headers: Vec<(&[u8], &[u8])> = bytes
                .split(|&c| c == b'\n')
                .filter_map(|l| {
                    let i = l.iter().position(|&c| c == b':')?;
                    Some((&l[..i], &l[i + 1..]))
                })
                .collect();
            for r in [
                http_reply(status, &headers, &bytes, Signal::Traces),
                grpc_reply(&headers),
            ] {
                match r {
                    Reply::Retry { after, message } => {
                        assert!(after.is_none_or(|d| d <= MAX_RETRY_AFTER));
                        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
                    }
                    Reply::Permanent { message } => {
                        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1)
                    }
                    Reply::Accepted { .. } => {}
                }
            }
        }
    }
}
