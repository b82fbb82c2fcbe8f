//! The built-in route heuristic: which path segments are identifiers.
//!
//! Stage: span (route derivation), second rule. Input: one path segment (between two `/`).
//! Output: the segment's replacement, a placeholder ([`ID`], [`DATE`], [`EMAIL`]) or the
//! segment with id-like dot/colon-separated parts replaced (`app.3f2a9c1b.js` →
//! `app.{id}.js`), or `None` to keep it.
//!
//! An identifier is: a number; a UUID; hex of at least 8 characters holding a digit (hashes,
//! object ids); a word of at least 5 characters with a run of 4 or more digits (`ORD12345`,
//! `user1234`); a base64/base64url token of at least 16 characters holding letters and digits;
//! a letters-only string of at least 12 characters switching case at least every fourth
//! character (random mixed-case tokens; camelCase words switch far less); any segment longer
//! than [`MAX_SEGMENT_BYTES`]. Dates (`2024-01-05`, `2024-01`, `20240105`, ISO 8601 date-times)
//! become [`DATE`], e-mail addresses [`EMAIL`]. Versions (`v1`, `v2.1`), short words with
//! digits (`s3`, `h264`, `sha256`, `x86_64`, `oauth2`) and camelCase words stay. Limits: no dictionary
//! (no "gibberish" detection of lowercase random words): the cardinality guard catches what
//! this misses. Pure code, allocation only for a replaced multi-part segment.

use std::borrow::Cow;

/// Placeholder of identifiers.
pub const ID: &str = "{id}";
/// Placeholder of dates and date-times.
pub const DATE: &str = "{date}";
/// Placeholder of e-mail addresses.
pub const EMAIL: &str = "{email}";
/// Segments longer than this (bytes) are identifiers (tokens, slugs, blobs).
pub const MAX_SEGMENT_BYTES: usize = 64;

/// The route form of one path segment: borrowed when kept as is.
pub fn segment(seg: &str) -> Cow<'_, str> {
    if let Some(p) = whole(seg) {
        return Cow::Borrowed(p);
    }
    if !seg.contains(['.', ':']) || is_version(seg) {
        return Cow::Borrowed(seg);
    }
    // A file name or `name:verb`: replace the id-like parts, keep the rest (extensions).
    let mut out = String::with_capacity(seg.len());
    let mut replaced = 0;
    let mut parts = 0;
    let mut rest = seg;
    loop {
        let end = rest.find(['.', ':']).unwrap_or(rest.len());
        let (part, tail) = rest.split_at(end);
        parts += 1;
        match whole(part) {
            Some(p) => {
                out.push_str(p);
                replaced += 1;
            }
            None => out.push_str(part),
        }
        let Some(delim) = tail.chars().next() else {
            break;
        };
        out.push(delim);
        rest = &tail[1..];
    }
    match replaced {
        0 => Cow::Borrowed(seg),
        // Every part an id (`1.2.3`, a JWT): one placeholder.
        n if n == parts => Cow::Borrowed(ID),
        // Placeholders are longer than short parts: keep the bound on segment length.
        _ if out.len() > MAX_SEGMENT_BYTES => Cow::Borrowed(ID),
        _ => Cow::Owned(out),
    }
}

/// The placeholder for a segment that is an identifier as a whole, else `None`.
fn whole(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return None;
    }
    if s.len() > MAX_SEGMENT_BYTES {
        return Some(ID);
    }
    if is_email(s) {
        return Some(EMAIL);
    }
    if is_date(s) {
        return Some(DATE);
    }
    is_id(s).then_some(ID)
}

fn is_id(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        return true;
    }
    if is_uuid(b) {
        return true;
    }
    if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    if is_version(s) {
        return false;
    }
    if b.len() >= 5 && longest_digit_run(b) >= 4 {
        return true;
    }
    let token_chars = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+' | b'=' | b'~'));
    if token_chars && b.len() >= 16 && digits > 0 && b.iter().any(u8::is_ascii_alphabetic) {
        return true;
    }
    b.len() >= 12 && b.iter().all(u8::is_ascii_alphabetic) && case_switches(b) * 4 >= b.len()
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `v1`, `v2`, `v1.2.3`, `V3`, `v1beta1`, `v2alpha`.
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (num, tail) = rest.split_at(digits_end);
    !num.is_empty()
        && num.len() <= 8
        && num.starts_with(|c: char| c.is_ascii_digit())
        && ["", "alpha", "beta", "rc"].iter().any(|t| {
            tail.strip_prefix(t)
                .is_some_and(|d| d.bytes().all(|c| c.is_ascii_digit()))
        })
}

fn longest_digit_run(b: &[u8]) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in b {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

fn case_switches(b: &[u8]) -> usize {
    b.windows(2)
        .filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase())
        .count()
}

fn is_email(s: &str) -> bool {
    let (local, domain) = match s.split_once('@').or_else(|| s.split_once("%40")) {
        Some(p) => p,
        None => return false,
    };
    !local.is_empty()
        && domain.len() >= 3
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
}

/// `YYYY-MM-DD`, `YYYY-MM`, `YYYYMMDD`, and `YYYY-MM-DDT…` date-times (years 1900..=2199).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = b.get(r)?;
        t.iter()
            .all(u8::is_ascii_digit)
            .then(|| t.iter().fold(0, |a, c| a * 10 + u32::from(c - b'0')))
    };
    let ymd = |y: Option<u32>, m: Option<u32>, d: Option<u32>| {
        matches!((y, m, d), (Some(1900..=2199), Some(1..=12), Some(1..=31)))
    };
    match b.len() {
        7 => b[4] == b'-' && ymd(num(0..4), num(5..7), Some(1)),
        8 => ymd(num(0..4), num(4..6), num(6..8)),
        10 => b[4] == b'-' && b[7] == b'-' && ymd(num(0..4), num(5..7), num(8..10)),
        n if n > 10 => {
            b[4] == b'-'
                && b[7] == b'-'
                && matches!(b[10], b'T' | b't')
                && ymd(num(0..4), num(5..7), num(8..10))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for id in [
            "42",
            "0",
            "550e8400-e29b-41d4-a716-446655440000",
            "9f1c2ab47e",
            "d41d8cd98f00b204e9800998ecf8427e",
            "ORD12345",
            "user1234",
            "dGhpcyBpcyBhIHRva2VuMTIz",
            "aZbXkQpLmNrTyU",
        ] {
            assert_eq!(segment(id), ID, "{id}");
        }
        for kept in [
            "users",
            "v1",
            "sha256",
            "user123",
            "v2.1",
            "v1beta1",
            "s3",
            "h264",
            "x86_64",
            "oauth2",
            "deadbeef",
            "getAccountInformation",
            "index.html",
            "api",
            "2fa",
            "health",
        ] {
            assert_eq!(segment(kept), kept, "{kept}");
        }
    }

    #[test]
    fn dates_emails_and_files() {
        for d in ["2024-01-05", "2024-01", "20240105", "2024-01-05T10:20:30Z"] {
            assert_eq!(segment(d), DATE, "{d}");
        }
        assert_eq!(segment("12345678"), ID, "not a date: month 56");
        assert_eq!(segment("jane.doe@example.com"), EMAIL);
        assert_eq!(segment("jane%40example.com"), EMAIL);
        assert_eq!(segment("app.3f2a9c1b.js"), "app.{id}.js");
        assert_eq!(segment("123.json"), "{id}.json");
        assert_eq!(segment("1.2.3"), ID);
        assert_eq!(segment("operations:cancel"), "operations:cancel");
        assert_eq!(segment("42:cancel"), "{id}:cancel");
        assert_eq!(segment(&"a".repeat(65)), ID);
        assert_eq!(segment(&"1.x.".repeat(16)), ID, "expanded past the bound");
    }
}
