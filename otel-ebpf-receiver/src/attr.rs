//! Our own attribute model, shared by spans, resources, metrics and log records.
//!
//! Stage: the vocabulary between **span**/**enrich**/**metrics** and **export**. Input: none.
//! Output: [`AttrSink`], the one interface through which a stage hands attributes to whoever
//! renders them (the OTLP protobuf encoder in `export/`, the console, tests), and
//! [`AttrValue`] / [`Attributes`] for the few places that keep attributes (process resources,
//! metric series, log records).
//!
//! Why not the OTLP `KeyValue` type: every `KeyValue` owns its key and value as heap strings
//! (about 2 KB per span of 15 attributes), while almost every key is a `&'static str` from
//! `semconv/` and most values are borrowed from the exchange. Spans therefore keep their
//! fields and *emit* attributes on demand through [`AttrSink`]; the encoder writes them
//! straight into the export buffer. Limits: values are strings, 64-bit ints, doubles,
//! booleans, string arrays and int arrays (what this receiver emits); no maps.

use std::borrow::Cow;
use std::fmt;

/// Receives attributes one at a time, in the order they are emitted.
pub trait AttrSink {
    /// A string attribute.
    fn str(&mut self, key: &str, v: &str);
    /// A 64-bit integer attribute.
    fn int(&mut self, key: &str, v: i64);
    /// A double attribute.
    fn double(&mut self, key: &str, v: f64);
    /// A boolean attribute.
    fn bool(&mut self, key: &str, v: bool);
    /// An array of strings (e.g. `process.command_args`).
    fn str_array(&mut self, key: &str, v: &[String]);
    /// An array of 64-bit integers (the default hands it over as a string array).
    fn int_array(&mut self, key: &str, v: &[i64]) {
        let s: Vec<String> = v.iter().map(i64::to_string).collect();
        self.str_array(key, &s);
    }
    /// A string attribute given by its `Display` form (formatted only by sinks that need it
    /// as a string; the default formats into a temporary `String`).
    fn display(&mut self, key: &str, v: &dyn fmt::Display) {
        let s = v.to_string();
        self.str(key, &s);
    }
    /// An IP address as a string attribute (`127.0.0.1`, `::1`: the `Display` form).
    fn ip(&mut self, key: &str, ip: std::net::IpAddr) {
        match ip {
            std::net::IpAddr::V4(v4) => {
                let mut buf = [0u8; 15];
                let n = ipv4_text(v4, &mut buf);
                self.str(key, std::str::from_utf8(&buf[..n]).unwrap_or_default());
            }
            std::net::IpAddr::V6(_) => self.display(key, &ip),
        }
    }
}

/// Writes `ip` in dotted-decimal form (the `Display` form) into `out`; returns the length
/// (7–15 bytes). Formatting through `fmt` cost more than the rest of an address attribute.
fn ipv4_text(ip: std::net::Ipv4Addr, out: &mut [u8; 15]) -> usize {
    let mut n = 0;
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            out[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            out[n] = b'0' + (o / 10) % 10;
            n += 1;
        }
        out[n] = b'0' + o % 10;
        n += 1;
    }
    n
}

/// An attribute value that is kept (resources, metric series, log records).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// UTF-8 string.
    Str(Cow<'static, str>),
    /// 64-bit signed integer.
    Int(i64),
    /// IEEE 754 double.
    Double(f64),
    /// Boolean.
    Bool(bool),
    /// Array of strings.
    StrArray(Vec<String>),
    /// Array of 64-bit signed integers (e.g. the pids of an anomaly).
    IntArray(Vec<i64>),
}

impl AttrValue {
    /// Hands this value to `sink` under `key`.
    pub fn emit(&self, key: &str, sink: &mut dyn AttrSink) {
        match self {
            AttrValue::Str(s) => sink.str(key, s),
            AttrValue::Int(i) => sink.int(key, *i),
            AttrValue::Double(d) => sink.double(key, *d),
            AttrValue::Bool(b) => sink.bool(key, *b),
            AttrValue::StrArray(v) => sink.str_array(key, v),
            AttrValue::IntArray(v) => sink.int_array(key, v),
        }
    }

    /// The string value, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Double(d) => write!(f, "{d}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::StrArray(v) => write!(f, "{v:?}"),
            AttrValue::IntArray(v) => write!(f, "{v:?}"),
        }
    }
}

impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        AttrValue::Str(Cow::Borrowed(s))
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(Cow::Owned(s))
    }
}

impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        AttrValue::Int(i)
    }
}

impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}

/// A kept, ordered attribute list (keys are usually `&'static str` from `semconv/`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(pub Vec<(Cow<'static, str>, AttrValue)>);

impl Attributes {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends `key = v`.
    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, v: impl Into<AttrValue>) {
        self.0.push((key.into(), v.into()));
    }

    /// The value of `key` (first occurrence).
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands every attribute to `sink`, in order.
    pub fn emit(&self, sink: &mut dyn AttrSink) {
        for (k, v) in &self.0 {
            v.emit(k, sink);
        }
    }

    /// Iterates over `(key, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttrValue)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

/// A sink that keeps everything it receives (tests, golden files, the console).
impl AttrSink for Attributes {
    fn str(&mut self, key: &str, v: &str) {
        self.push(key.to_string(), v.to_string());
    }
    fn int(&mut self, key: &str, v: i64) {
        self.push(key.to_string(), v);
    }
    fn double(&mut self, key: &str, v: f64) {
        self.0.push((key.to_string().into(), AttrValue::Double(v)));
    }
    fn bool(&mut self, key: &str, v: bool) {
        self.push(key.to_string(), v);
    }
    fn str_array(&mut self, key: &str, v: &[String]) {
        self.0
            .push((key.to_string().into(), AttrValue::StrArray(v.to_vec())));
    }
    fn int_array(&mut self, key: &str, v: &[i64]) {
        self.0
            .push((key.to_string().into(), AttrValue::IntArray(v.to_vec())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_attributes_replay_in_order_through_a_sink() {
        let mut a = Attributes::new();
        a.push("service.name", "nginx");
        a.push("process.pid", 42i64);
        a.push("flag", true);
        a.0.push(("ratio".into(), AttrValue::Double(0.5)));
        let mut copy = Attributes::new();
        a.emit(&mut copy);
        assert_eq!(copy, a);
        assert_eq!(a.get("process.pid"), Some(&AttrValue::Int(42)));
        assert_eq!(
            a.get("service.name").and_then(AttrValue::as_str),
            Some("nginx")
        );
        assert_eq!(a.get("missing"), None);
        assert_eq!(a.get("ratio").unwrap().to_string(), "0.5");
    }

    #[test]
    fn display_defaults_to_a_string_attribute() {
        let mut a = Attributes::new();
        a.display("net", &std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.get("net").and_then(AttrValue::as_str), Some("10.0.0.1"));
    }

    #[test]
    fn ipv4_text_is_the_display_form() {
        let mut rng = rand::rng();
        let fixed = [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 9, 100],
            [1, 20, 199, 250],
        ];
        let random = (0..2000).map(|_| rand::Rng::random::<[u8; 4]>(&mut rng));
        for o in fixed.into_iter().chain(random) {
            let ip = std::net::Ipv4Addr::from(o);
            let mut buf = [0u8; 15];
            let n = ipv4_text(ip, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), ip.to_string());
        }
        let mut a = Attributes::new();
        a.ip("v4", "192.168.7.10".parse().unwrap());
        a.ip("v6", "fe80::1".parse().unwrap());
        assert_eq!(
            a.get("v4").and_then(AttrValue::as_str),
            Some("192.168.7.10")
        );
        assert_eq!(a.get("v6").and_then(AttrValue::as_str), Some("fe80::1"));
    }
}
