//! HTTP/1 detection at the start of a syscall's bytes.
//!
//! Stage: conn → **protocol::detect** → protocol::http1. Input: the captured bytes of one
//! syscall (`&[u8]`, possibly cut short of the syscall's full length). Output: a [`Start`]
//! verdict saying whether those bytes begin an HTTP/1 request line (RFC 9112 §3), a status line
//! (RFC 9112 §4), a prefix of one that was cut at the end of the bytes, or anything else.
//! Limits: looks at no more than [`MAX_START_LINE`] bytes, allocates nothing, never buffers.

/// Longest request or status line (bytes, CRLF included) recognised as a message start.
/// RFC 9112 §3 recommends supporting at least 8000 octets of request-line.
pub const MAX_START_LINE: usize = 8192;

/// Request methods recognised as the start of an HTTP/1 request: RFC 9110 §9, PATCH
/// (RFC 5789), WebDAV (RFC 4918) and PURGE (common cache extension). Custom methods inside an
/// already recognised connection are still parsed; this list only gates detection.
pub const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"PURGE",
];

/// What the first bytes of a syscall look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A complete request-line (`method SP request-target SP HTTP/1.d CRLF`, RFC 9112 §3).
    Request,
    /// A status-line start (`HTTP/1.d SP 3DIGIT` then SP or line end, RFC 9112 §4).
    Response,
    /// A prefix of a request-line that ends with the bytes (more may follow in the next syscall).
    PartialRequest,
    /// A prefix of a status-line that ends with the bytes.
    PartialResponse,
    /// Neither: not an HTTP/1 message start.
    Other,
}

/// Classifies the start of a syscall's bytes (request-line first, then status-line).
pub fn classify(bytes: &[u8]) -> Start {
    match request_start(bytes) {
        Start::Other => response_start(bytes),
        s => s,
    }
}

/// Whether `bytes` begin a request-line: [`Start::Request`], [`Start::PartialRequest`] or
/// [`Start::Other`].
pub fn request_start(bytes: &[u8]) -> Start {
    let Some(&first) = bytes.first() else {
        return Start::Other;
    };
    // Fast reject: every known method starts with one of these letters.
    if !matches!(
        first,
        b'G' | b'P' | b'D' | b'H' | b'O' | b'C' | b'T' | b'M' | b'L' | b'U'
    ) {
        return Start::Other;
    }
    let mut method_prefix = false;
    for m in KNOWN_METHODS {
        if bytes.len() <= m.len() {
            if m.starts_with(bytes) {
                method_prefix = true;
            }
            continue;
        }
        if bytes.starts_with(m) && bytes[m.len()] == b' ' {
            return request_rest(&bytes[m.len() + 1..]);
        }
    }
    if method_prefix {
        Start::PartialRequest
    } else {
        Start::Other
    }
}

/// Checks `request-target SP HTTP-version CRLF` after the method and its space.
fn request_rest(rest: &[u8]) -> Start {
    let window = &rest[..rest.len().min(MAX_START_LINE)];
    let Some(sp) = window.iter().position(|&b| !is_target_byte(b)) else {
        return if rest.len() > window.len() {
            Start::Other
        } else {
            Start::PartialRequest
        };
    };
    if sp == 0 || window[sp] != b' ' {
        return Start::Other;
    }
    match version_and_eol(&window[sp + 1..]) {
        Some(true) => Start::Request,
        Some(false) if rest.len() == window.len() => Start::PartialRequest,
        _ => Start::Other,
    }
}

/// `HTTP/1.d` then CRLF or LF: Some(true) when complete, Some(false) when a prefix, None when
/// not matching.
fn version_and_eol(b: &[u8]) -> Option<bool> {
    const V: &[u8] = b"HTTP/1.";
    let n = b.len().min(V.len());
    if b[..n] != V[..n] {
        return None;
    }
    if b.len() <= V.len() {
        return Some(false);
    }
    if !b[V.len()].is_ascii_digit() {
        return None;
    }
    match b.get(V.len() + 1..) {
        Some([b'\n', ..]) | Some([b'\r', b'\n', ..]) => Some(true),
        Some([]) | Some([b'\r']) => Some(false),
        _ => None,
    }
}

/// Bytes allowed in a request-target: visible ASCII and (leniently) non-ASCII octets.
fn is_target_byte(b: u8) -> bool {
    b > 0x20 && b != 0x7f
}

/// Whether `bytes` begin a status-line: [`Start::Response`], [`Start::PartialResponse`] or
/// [`Start::Other`].
pub fn response_start(bytes: &[u8]) -> Start {
    const P: &[u8] = b"HTTP/1.";
    let n = bytes.len().min(P.len());
    if n == 0 || bytes[..n] != P[..n] {
        return Start::Other;
    }
    // "HTTP/1.d SP ddd" then SP / CR / LF
    for i in P.len()..P.len() + 6 {
        let Some(&b) = bytes.get(i) else {
            return Start::PartialResponse;
        };
        let ok = match i - P.len() {
            1 => b == b' ',
            5 => matches!(b, b' ' | b'\r' | b'\n'),
            _ => b.is_ascii_digit(),
        };
        if !ok {
            return Start::Other;
        }
    }
    Start::Response
}

/// Whether bytes at a message boundary of an HTTP/1 stream can begin a message: a status-line
/// (prefix) for responses; for requests any `token SP` method (RFC 9110 §9.1: extension
/// methods are allowed once the connection is known to be HTTP/1), or a prefix of one.
/// Leading CR/LF must have been skipped by the caller.
pub fn plausible_start(request: bool, bytes: &[u8]) -> bool {
    if !request {
        return response_start(bytes) != Start::Other;
    }
    const MAX_METHOD: usize = 32;
    let head = &bytes[..bytes.len().min(MAX_METHOD + 1)];
    match head.iter().position(|&b| !is_tchar(b)) {
        Some(0) => false,
        Some(i) => head[i] == b' ',
        None => head.len() <= MAX_METHOD,
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `bytes` begin a TLS record (RFC 8446 §5.1: content type 20–23, legacy version
/// 0x03 0x00..=0x04). Used to reject TLS ciphertext at once.
pub fn is_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [20..=23, 0x03, 0..=4, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_request_lines() {
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Start::Request
        );
        assert_eq!(classify(b"POST /x?y=1 HTTP/1.0\n"), Start::Request);
        assert_eq!(classify(b"PROPFIND /dav HTTP/1.1\r\n"), Start::Request);
        assert_eq!(
            classify(b"CONNECT example.com:443 HTTP/1.1\r\n"),
            Start::Request
        );
        assert_eq!(classify(b"OPTIONS * HTTP/1.1\r\n"), Start::Request);
    }

    #[test]
    fn recognises_request_prefixes() {
        for p in [
            &b"G"[..],
            b"GE",
            b"GET",
            b"GET ",
            b"GET /a",
            b"GET /a ",
            b"GET /a HTTP/1",
        ] {
            assert_eq!(
                classify(p),
                Start::PartialRequest,
                "{:?}",
                String::from_utf8_lossy(p)
            );
        }
        assert_eq!(classify(b"GET /a HTTP/1.1"), Start::PartialRequest);
        assert_eq!(classify(b"GET /a HTTP/1.1\r"), Start::PartialRequest);
    }

    #[test]
    fn recognises_status_lines() {
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n"), Start::Response);
        assert_eq!(classify(b"HTTP/1.0 404\r\n"), Start::Response);
        assert_eq!(classify(b"HTTP/1.1 204 \r\n"), Start::Response);
        assert_eq!(classify(b"HTTP/1.1 20"), Start::PartialResponse);
        assert_eq!(classify(b"HTTP/"), Start::PartialResponse);
        // "H" could begin HEAD or HTTP/: request prefixes are checked first.
        assert_eq!(classify(b"H"), Start::PartialRequest);
        assert_eq!(response_start(b"H"), Start::PartialResponse);
    }

    #[test]
    fn rejects_other_protocols() {
        let tls = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01];
        assert_eq!(classify(&tls), Start::Other);
        assert!(is_tls_record(&tls));
        assert!(!is_tls_record(b"GET / HTTP/1.1\r\n"));
        assert_eq!(classify(b"*3\r\n$3\r\nSET\r\n"), Start::Other); // Redis RESP
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Start::Other); // h2 preface
        assert_eq!(classify(b"GET / HTTP/2.0\r\n"), Start::Other);
        assert_eq!(classify(b"GET  / HTTP/1.1\r\n"), Start::Other);
        assert_eq!(classify(b"GETX / HTTP/1.1\r\n"), Start::Other);
        assert_eq!(classify(b"get / HTTP/1.1\r\n"), Start::Other);
        assert_eq!(classify(b"GET / HTTP/1.1 \r\n"), Start::Other);
        assert_eq!(classify(b"GET /a\x00b HTTP/1.1\r\n"), Start::Other);
        assert_eq!(classify(b"HTTP/1.1 2x0 OK\r\n"), Start::Other);
        assert_eq!(classify(b"HTTP/2 200\r\n"), Start::Other);
        assert_eq!(classify(b"220 smtp.example.com ESMTP\r\n"), Start::Other);
        assert_eq!(classify(b""), Start::Other);
    }

    #[test]
    fn plausible_message_starts() {
        assert!(plausible_start(true, b"GET / HTTP/1.1\r\n"));
        assert!(plausible_start(true, b"MKCALENDAR /cal HTTP/1.1\r\n"));
        assert!(plausible_start(true, b"MKCALEN"));
        assert!(!plausible_start(true, b"{\"json\": 1}"));
        assert!(!plausible_start(true, b"abc\r\n"));
        assert!(!plausible_start(true, &[b'A'; 40]));
        assert!(plausible_start(false, b"HTTP/1.1 200 OK\r\n"));
        assert!(plausible_start(false, b"HTT"));
        assert!(!plausible_start(false, b"<html>"));
    }

    #[test]
    fn bounds_the_line_scan() {
        let mut long = b"GET /".to_vec();
        long.resize(MAX_START_LINE + 100, b'a');
        assert_eq!(classify(&long), Start::Other);
        long.truncate(MAX_START_LINE);
        assert_eq!(classify(&long), Start::PartialRequest);
    }
}
