//! HTTP/1 message heads: start line, header fields and message framing.
//!
//! Stage: protocol::http1 (inner step). Input: the bytes of one message head (start-line +
//! header section, RFC 9112 §2.1), contiguous, possibly incomplete. Output: a [`Head`] with the
//! few fields the exchange keeps and the body framing headers (RFC 9112 §6), or need-more, or
//! an error. Limits: at most [`MAX_HEADERS`] header fields; kept strings are truncated to
//! [`MAX_TARGET_BYTES`] / [`MAX_FIELD_BYTES`].

use super::ParseError;
use crate::protocol::propagation::{Collector, Propagated, PropagationError};

/// Most header fields parsed in one head (more is a parse error).
pub const MAX_HEADERS: usize = 128;
/// Longest request-target kept in an exchange (bytes; longer ones are truncated).
pub const MAX_TARGET_BYTES: usize = 4096;
/// Longest `Host` / `User-Agent` value kept (bytes; longer ones are truncated).
pub const MAX_FIELD_BYTES: usize = 1024;

/// What an exchange keeps of a request head (RFC 9112 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Method token, e.g. "GET".
    pub method: String,
    /// Request-target as sent (truncated to [`MAX_TARGET_BYTES`]).
    pub target: String,
    /// HTTP-version minor digit: 0 for "HTTP/1.0", 1 for "HTTP/1.1".
    pub minor_version: u8,
    /// `Host` field value (RFC 9110 §7.2).
    pub host: Option<String>,
    /// `User-Agent` field value (RFC 9110 §10.1.5).
    pub user_agent: Option<String>,
    /// `Upgrade` lists `h2c` (RFC 7540 §3.2): a 101 answer switches the connection to HTTP/2.
    pub upgrade_h2c: bool,
    /// Trace context from `traceparent`/`tracestate`/`b3`/`X-B3-*`: `None` when none was
    /// sent, `Some(Err)` when one was malformed.
    pub propagation: Option<Result<Propagated, PropagationError>>,
}

/// The trace context of a request's header fields (see [`crate::protocol::propagation`]).
fn propagation<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Option<Result<Propagated, PropagationError>> {
    let mut c = Collector::default();
    for (name, value) in fields {
        c.header(name, value);
    }
    if !c.seen() {
        return None;
    }
    c.finish().transpose()
}

/// Body framing fields of one head (RFC 9112 §6.1, §6.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framing {
    /// Content-Length in bytes, when present and valid.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` present.
    pub transfer_encoding: bool,
    /// `chunked` is the final transfer coding.
    pub chunked: bool,
}

/// One parsed message head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// Request head and framing.
    Request(RequestHead, Framing),
    /// Status code (RFC 9110 §15) and framing.
    Response(u16, Framing),
}

/// Parses a complete head from the start of `buf`.
/// Returns `Ok(Some((head_len_bytes, head)))`, `Ok(None)` when more bytes are needed, or an
/// error for bytes that cannot be an HTTP/1 head.
pub fn parse(request: bool, buf: &[u8]) -> Result<Option<(usize, Head)>, ParseError> {
    // Uninitialised: httparse writes only the fields it finds (a 128-entry initialised array
    // cost a 4 KB store on every head).
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let config = httparse::ParserConfig::default();
    if request {
        let mut req = httparse::Request::new(&mut []);
        let n = match config.parse_request_with_uninit_headers(&mut req, buf, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::InvalidHead),
        };
        let (framing, host, user_agent, upgrade_h2c) = fields(req.headers)?;
        let head = RequestHead {
            method: req.method.unwrap_or_default().to_owned(),
            target: truncated(req.path.unwrap_or_default().as_bytes(), MAX_TARGET_BYTES),
            minor_version: req.version.unwrap_or(1),
            host,
            user_agent,
            upgrade_h2c,
            propagation: propagation(req.headers.iter().map(|h| (h.name.as_bytes(), h.value))),
        };
        Ok(Some((n, Head::Request(head, framing))))
    } else {
        let mut resp = httparse::Response::new(&mut []);
        let n = match config.parse_response_with_uninit_headers(&mut resp, buf, &mut headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::InvalidHead),
        };
        let (framing, _, _, _) = fields(resp.headers)?;
        Ok(Some((
            n,
            Head::Response(resp.code.unwrap_or_default(), framing),
        )))
    }
}

/// Framing, `Host`, `User-Agent`, `Upgrade: h2c`.
type Fields = (Framing, Option<String>, Option<String>, bool);

/// Reads the framing fields and the kept request fields from parsed headers.
fn fields(headers: &[httparse::Header<'_>]) -> Result<Fields, ParseError> {
    let mut framing = Framing::default();
    let (mut host, mut user_agent, mut h2c) = (None, None, false);
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(h.value).ok_or(ParseError::BadContentLength)?;
            if framing.content_length.is_some_and(|old| old != n) {
                return Err(ParseError::BadContentLength);
            }
            framing.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing.transfer_encoding = true;
            // Codings are a comma list across all field lines; only the final one matters.
            if let Some(last) = h.value.rsplit(|&b| b == b',').next() {
                let last = trim_ows(last);
                if !last.is_empty() {
                    framing.chunked = last.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            host.get_or_insert_with(|| truncated(trim_ows(h.value), MAX_FIELD_BYTES));
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            user_agent.get_or_insert_with(|| truncated(trim_ows(h.value), MAX_FIELD_BYTES));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            h2c |= h
                .value
                .split(|&b| b == b',')
                .any(|p| trim_ows(p).eq_ignore_ascii_case(b"h2c"));
        }
    }
    Ok((framing, host, user_agent, h2c))
}

/// Content-Length value (RFC 9110 §8.6): 1*DIGIT, or a list of identical values.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut out = None;
    for part in value.split(|&b| b == b',') {
        let part = trim_ows(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        if out.is_some_and(|o| o != n) {
            return None;
        }
        out = Some(n);
    }
    out
}

/// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) at both ends.
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Lossy UTF-8 copy of at most `max` bytes.
fn truncated(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// What can be recovered from a head whose end was not captured: the start-line and the
/// header lines that were captured whole. Framing is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Salvaged {
    /// Request-line, plus `Host` / `User-Agent` when captured.
    Request(RequestHead),
    /// Status code of the status-line.
    Response(u16),
}

/// Recovers the start-line (and `Host` / `User-Agent` when captured) of a head that cannot
/// be parsed whole: cut short, too large or with invalid header fields. Returns None when the
/// start-line itself is incomplete or invalid.
pub fn salvage(request: bool, buf: &[u8]) -> Option<Salvaged> {
    // Parse the start-line alone: it must be complete and valid (then httparse wants more).
    let eol = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..=eol];
    let mut headers = [httparse::EMPTY_HEADER; 0];
    if !request {
        let mut resp = httparse::Response::new(&mut headers);
        return match resp.parse(line) {
            Ok(httparse::Status::Partial) => resp.code.map(Salvaged::Response),
            _ => None,
        };
    }
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Partial) = req.parse(line) else {
        return None;
    };
    let (Some(method), Some(path), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return None;
    };
    let mut head = RequestHead {
        method: method.to_owned(),
        target: truncated(path.as_bytes(), MAX_TARGET_BYTES),
        minor_version,
        host: None,
        user_agent: None,
        upgrade_h2c: false,
        propagation: None,
    };
    // Header lines captured whole.
    let mut rest = &buf[eol + 1..];
    let mut ctx = Collector::default();
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim_ows(line[colon + 1..].trim_ascii_end()));
        if name.eq_ignore_ascii_case(b"host") && head.host.is_none() {
            head.host = Some(truncated(value, MAX_FIELD_BYTES));
        } else if name.eq_ignore_ascii_case(b"user-agent") && head.user_agent.is_none() {
            head.user_agent = Some(truncated(value, MAX_FIELD_BYTES));
        } else {
            ctx.header(name, value);
        }
    }
    if ctx.seen() {
        head.propagation = ctx.finish().transpose();
    }
    Some(Salvaged::Request(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(b: &[u8]) -> (usize, RequestHead, Framing) {
        match parse(true, b).unwrap().unwrap() {
            (n, Head::Request(h, f)) => (n, h, f),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_request_fields() {
        let b = b"POST /a?b=1 HTTP/1.0\r\nHOST:  example.com \r\nuser-agent: curl/8\r\n\
                  Content-Length: 5\r\n\r\nhello";
        let (n, h, f) = req(b);
        assert_eq!(n, b.len() - 5);
        assert_eq!(
            h,
            RequestHead {
                method: "POST".into(),
                target: "/a?b=1".into(),
                minor_version: 0,
                host: Some("example.com".into()),
                user_agent: Some("curl/8".into()),
                upgrade_h2c: false,
                propagation: None,
            }
        );
        assert_eq!(
            f,
            Framing {
                content_length: Some(5),
                ..Framing::default()
            }
        );
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"42, 42"), Some(42));
        assert_eq!(content_length(b"42, 43"), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
        let dup = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(true, dup), Err(ParseError::BadContentLength));
        let same = b"GET / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(req(same).2.content_length, Some(2));
    }

    #[test]
    fn transfer_coding_final_chunked() {
        let b = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: Chunked\r\n\r\n";
        let f = Framing {
            transfer_encoding: true,
            chunked: true,
            content_length: None,
        };
        assert_eq!(parse(false, b).unwrap().unwrap().1, Head::Response(200, f));
        let b = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        let f = Framing {
            transfer_encoding: true,
            chunked: false,
            content_length: None,
        };
        assert_eq!(parse(false, b).unwrap().unwrap().1, Head::Response(200, f));
    }

    #[test]
    fn partial_and_invalid() {
        assert_eq!(parse(true, b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parse(false, b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(
            parse(true, b"\x16\x03\x01\x00"),
            Err(ParseError::InvalidHead)
        );
        assert_eq!(
            parse(false, b"HTTP/1.1 2000 OK\r\n\r\n"),
            Err(ParseError::InvalidHead)
        );
    }

    #[test]
    fn salvages_truncated_heads() {
        let b = b"GET /big HTTP/1.1\r\nHost: h\r\nCookie: aaaaaaa";
        let Some(Salvaged::Request(h)) = salvage(true, b) else {
            panic!()
        };
        assert_eq!((h.method.as_str(), h.target.as_str()), ("GET", "/big"));
        assert_eq!((h.host.as_deref(), h.user_agent), (Some("h"), None));
        assert_eq!(salvage(true, b"GET /big HTT"), None);
        assert_eq!(
            salvage(false, b"HTTP/1.1 503 Busy\r\nSet-Cookie: x"),
            Some(Salvaged::Response(503))
        );
        assert_eq!(salvage(false, b"HTTP/1.1 50"), None);
        assert_eq!(salvage(false, b"HTTP/1.1 503"), None);
        assert_eq!(
            salvage(false, b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"),
            Some(Salvaged::Response(200))
        );
        assert_eq!(salvage(true, b"GET / HTTP/1.1x\r\nHost: a\r\n"), None);
        assert_eq!(salvage(false, b"\x00\x01"), None);
    }

    #[test]
    fn truncates_long_fields() {
        let mut b = b"GET /".to_vec();
        b.extend(std::iter::repeat_n(b'a', MAX_TARGET_BYTES + 10));
        b.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(req(&b).1.target.len(), MAX_TARGET_BYTES);
    }
}
