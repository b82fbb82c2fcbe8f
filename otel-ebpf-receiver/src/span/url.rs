//! Request targets and URLs (RFC 9112 §3.2, RFC 3986): splitting a target into path, query
//! and authority, `host[:port]`, `url.full`, and redaction of sensitive query values.
//!
//! Stage: span (inner step). Pure code, no IO, no allocation except [`redact_query`] when a
//! value is redacted.

use otel_ebpf_semconv::value;
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// Parts of a request target (RFC 9112 §3.2).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub(crate) path: Option<&'a str>,
    pub(crate) query: Option<&'a str>,
    /// `host[:port]` of absolute-form and authority-form targets (userinfo removed).
    pub(crate) authority: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(crate) fn parse(t: &'a str) -> Self {
        let t = t.split_once('#').map_or(t, |(before, _)| before);
        let path_query = |pq: &'a str| {
            let (p, q) = pq.split_once('?').map_or((pq, None), |(p, q)| (p, Some(q)));
            (Some(if p.is_empty() { "/" } else { p }), q)
        };
        if t.starts_with('/') || t == "*" {
            let (path, query) = path_query(t);
            return Self {
                path,
                query,
                authority: None,
            };
        }
        if let Some((_scheme, rest)) = t.split_once("://") {
            // absolute-form: scheme "://" authority path-abempty [ "?" query ]
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (auth, pq) = rest.split_at(end);
            let (path, query) = path_query(pq);
            return Self {
                path,
                query,
                authority: strip_userinfo(auth),
            };
        }
        // authority-form (CONNECT host:port): no path.
        Self {
            path: None,
            query: None,
            authority: strip_userinfo(t),
        }
    }
}

fn strip_userinfo(auth: &str) -> Option<&str> {
    let a = auth.rsplit_once('@').map_or(auth, |(_, host)| host);
    (!a.is_empty()).then_some(a)
}

/// Splits `host[:port]` (`[v6]:port` for IPv6); `None` for an empty host.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            _ => (s, None), // no port, or a bare IPv6 address
        }
    };
    (!host.is_empty()).then(|| (host, port.and_then(|p| p.parse().ok())))
}

/// A host as reported in `server.address`: a name from the request, or a socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// Host name or address literal as the request named it (no brackets).
    Name(&'a str),
    /// An address of the connection.
    Ip(IpAddr),
}

impl Host<'_> {
    fn is_v6(&self) -> bool {
        match self {
            Host::Name(n) => n.contains(':'),
            Host::Ip(ip) => ip.is_ipv6(),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => ip.fmt(f),
        }
    }
}

/// `scheme://host[:port]path[?query]`; IPv6 hosts in brackets, the scheme's default port
/// (80 for http, 443 for https) left out. Formatted lazily (`Display`).
pub(crate) struct FullUrl<'a> {
    pub scheme: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl fmt::Display for FullUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme)?;
        f.write_str("://")?;
        if self.host.is_v6() {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        let default = if self.scheme == value::SCHEME_HTTPS {
            443
        } else {
            80
        };
        if let Some(p) = self.port.filter(|&p| p != default) {
            write!(f, ":{p}")?;
        }
        f.write_str(self.path)?;
        if let Some(q) = self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// Replaces the values of [`value::SENSITIVE_QUERY_KEYS`] and of well-known secret keys
/// (`password`, `token`, …: [`crate::enrich::redact`]) by `REDACTED`, keeping the keys;
/// borrows `q` when nothing is redacted.
pub(crate) fn redact_query(q: &str) -> Cow<'_, str> {
    let redacted = crate::enrich::redact::query(q);
    if redacted == q {
        Cow::Borrowed(q)
    } else {
        Cow::Owned(redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_forms() {
        let t = Target::parse("/p?q=1");
        assert_eq!(
            t,
            Target {
                path: Some("/p"),
                query: Some("q=1"),
                authority: None
            }
        );
        assert_eq!(Target::parse("*").path, Some("*"));
        let t = Target::parse("db.example:443");
        assert_eq!(
            t,
            Target {
                path: None,
                query: None,
                authority: Some("db.example:443")
            }
        );
        assert_eq!(split_host_port("h:1"), Some(("h", Some(1))));
        assert_eq!(split_host_port("h:x"), Some(("h", None)));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port(" "), None);
        assert_eq!(split_host_port(":80"), None);
    }

    #[test]
    fn full_url_forms() {
        let u = |host, port, query| {
            FullUrl {
                scheme: "http",
                host,
                port,
                path: "/a",
                query,
            }
            .to_string()
        };
        assert_eq!(
            u(Host::Name("x.example"), Some(80), None),
            "http://x.example/a"
        );
        assert_eq!(
            u(Host::Ip("::1".parse().unwrap()), Some(8080), Some("q=1")),
            "http://[::1]:8080/a?q=1"
        );
        assert_eq!(
            u(Host::Name("2001:db8::5"), None, None),
            "http://[2001:db8::5]/a"
        );
    }

    #[test]
    fn redaction_borrows_when_clean() {
        assert!(matches!(redact_query("a=1&b"), Cow::Borrowed("a=1&b")));
        assert_eq!(redact_query("sig=x&a=1"), "sig=REDACTED&a=1");
    }
}
