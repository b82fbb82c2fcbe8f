//! Value parsers for export settings: numbers, booleans, protocol, compression, header lists
//! (`k=v,k2=v2`, %-decoded), URLs. Every error names the variable or config key it came from.
//! Source: <https://opentelemetry.io/docs/specs/otel/protocol/exporter/> ("Specifying headers
//! via environment variables", "Configuration Options").

use std::time::Duration;

use hyper::http::{HeaderMap, HeaderName, HeaderValue};

use super::{Compression, ExportError, Protocol};

/// An [`ExportError::InvalidSetting`] for variable/key `name`.
pub(super) fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ExportError {
    ExportError::InvalidSetting {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// A positive, finite number of seconds from the config.
pub(super) fn seconds(key: &str, v: f64) -> Result<Duration, ExportError> {
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(invalid(
            key,
            &v.to_string(),
            "must be a positive number of seconds",
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A positive integer (ms, counts).
pub(super) fn parse_positive(name: &str, v: &str) -> Result<u64, ExportError> {
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(name, v, "must be a positive integer")),
    }
}

/// `true` / `false`, case-insensitive.
pub(super) fn parse_bool(name: &str, v: &str) -> Result<bool, ExportError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, v, "must be true or false")),
    }
}

/// `grpc` / `http/protobuf`.
pub(super) fn parse_protocol(name: &str, v: &str) -> Result<Protocol, ExportError> {
    match v.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err(invalid(
            name,
            v,
            "http/json is not supported; use grpc or http/protobuf",
        )),
        _ => Err(invalid(name, v, "must be grpc or http/protobuf")),
    }
}

/// `gzip` / `none`, case-insensitive.
pub(super) fn parse_compression(name: &str, v: &str) -> Result<Compression, ExportError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        _ => Err(invalid(name, v, "must be gzip or none")),
    }
}

/// Decodes `%XX` escapes (spec: header values are URL-decoded). `+` is kept literally.
pub(super) fn percent_decode(name: &str, s: &str) -> Result<String, ExportError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => return Err(invalid(name, s, "bad %-escape")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(name, s, "decoded value is not UTF-8"))
}

/// Validates and inserts one header (replacing a same-named one), marked sensitive.
pub(super) fn insert_header(
    map: &mut HeaderMap,
    origin: &str,
    key: &str,
    value: &str,
) -> Result<(), ExportError> {
    let name = HeaderName::from_bytes(key.trim().as_bytes())
        .map_err(|_| invalid(origin, key, "invalid header name"))?;
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| invalid(origin, value, "invalid header value"))?;
    // Headers often carry credentials: keep them out of `Debug` output.
    value.set_sensitive(true);
    map.insert(name, value);
    Ok(())
}

/// Parses `k=v,k2=v2` (W3C-baggage-like list; values URL-decoded) into `map`.
pub(super) fn parse_headers(map: &mut HeaderMap, name: &str, v: &str) -> Result<(), ExportError> {
    for item in v.split(',').filter(|s| !s.trim().is_empty()) {
        let Some((k, val)) = item.split_once('=') else {
            return Err(invalid(name, v, format!("entry {item:?} is not key=value")));
        };
        if k.trim().is_empty() {
            return Err(invalid(name, v, format!("entry {item:?} has an empty key")));
        }
        insert_header(
            map,
            name,
            &percent_decode(name, k.trim())?,
            &percent_decode(name, val)?,
        )?;
    }
    Ok(())
}

/// Checks that `url` is `http(s)://authority[/path]` and returns it.
pub(super) fn check_url(origin: &str, url: &str) -> Result<String, ExportError> {
    let uri: hyper::http::Uri = url
        .parse()
        .map_err(|e| invalid(origin, url, format!("not a valid URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(invalid(origin, url, "scheme must be http:// or https://")),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(invalid(origin, url, "no host"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("V", "a%20b+c%2C%3D").unwrap(), "a b+c,=");
        assert_eq!(percent_decode("V", "caf%C3%A9").unwrap(), "café");
        assert_eq!(
            percent_decode("V", "%FF").unwrap_err().to_string(),
            "V: invalid value \"%FF\": decoded value is not UTF-8"
        );
        assert_eq!(
            percent_decode("V", "abc%2").unwrap_err().to_string(),
            "V: invalid value \"abc%2\": bad %-escape"
        );
    }

    #[test]
    fn header_lists_trim_and_skip_empty_entries() {
        let mut map = HeaderMap::new();
        parse_headers(&mut map, "V", " A = 1 ,, b=x=y ,").unwrap();
        let got: Vec<_> = map
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(got, vec![("a", "1"), ("b", "x=y")]);
    }
}
