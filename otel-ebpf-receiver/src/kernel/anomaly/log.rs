//! Anomalies as OTLP log records.
//!
//! Stage: anomaly detection → **log records** → export (`LogsSource`). Input: [`Anomaly`]s,
//! the receiver's own resource ([`receiver_resource`]) and the current Unix time (ns).
//! Output: one [`LogRecord`] (our own model; `export/` encodes it as OTLP) per anomaly —
//! severity WARN (`SeverityNumber` 13), `event_name` the kind's name, a one-line human body,
//! attributes from `otel_ebpf_semconv::anomaly` — and one [`LogsBatch`] holding them under one
//! resource. Source: OTel logs data model
//! (<https://opentelemetry.io/docs/specs/otel/logs/data-model/>).
//! Limits: the record time is the time of the conversion, not the window's (the window start
//! is on the monotonic clock); at most [`super::MAX_PIDS`] pids per record.

use std::fmt::Write as _;

use otel_ebpf_semconv::{anomaly as names, resource as res, value};

use super::{Anomaly, AnomalyKind};
use crate::attr::{AttrValue, Attributes};
use crate::model::{LogRecord, LogsBatch, Severity};

impl Anomaly {
    /// Window length in seconds.
    fn window_seconds(&self) -> f64 {
        self.window_ns as f64 / 1e9
    }

    /// One-line human description, e.g. `250 resets in 10s (peer 10.0.0.2)`.
    pub fn body(&self) -> String {
        let w = self.window_seconds();
        let mut s = match self.kind {
            AnomalyKind::ResetStorm => format!("{} resets in {w}s", self.count),
            AnomalyKind::ConnectFailures => format!(
                "{} of {} connects failed ({:.0}%) in {w}s",
                self.count,
                self.attempts,
                self.ratio * 100.0
            ),
            AnomalyKind::PeerConnectionSpike => {
                let mut s = format!("{} connections accepted", self.count);
                if let Some(p) = self.peer {
                    let _ = write!(s, " from {p}");
                }
                let _ = write!(s, " in {w}s");
                return s;
            }
        };
        if let Some(p) = self.peer {
            let _ = write!(s, " (peer {p})");
        }
        s
    }

    /// This anomaly as a WARN log record stamped `unix_ns` (Unix ns; time and observed time).
    /// Attributes: `otel_ebpf.anomaly.type`, `.count`, `.window` (seconds, double),
    /// `network.peer.address` when known, `.attempts` and `.ratio` for connect failures,
    /// `.pids` when known.
    pub fn to_log_record(&self, unix_ns: u64) -> LogRecord {
        let mut attributes = Attributes::new();
        attributes.push(names::TYPE, self.kind.name());
        attributes.push(names::COUNT, clamp_i64(self.count));
        attributes.push(names::WINDOW, AttrValue::Double(self.window_seconds()));
        if let Some(p) = self.peer {
            attributes.push(names::NETWORK_PEER_ADDRESS, p.to_string());
        }
        if self.kind == AnomalyKind::ConnectFailures {
            attributes.push(names::ATTEMPTS, clamp_i64(self.attempts));
            attributes.push(names::RATIO, AttrValue::Double(self.ratio));
        }
        if !self.pids.is_empty() {
            let pids = self.pids.iter().map(|p| i64::from(*p)).collect();
            attributes.push(names::PIDS, AttrValue::IntArray(pids));
        }
        LogRecord {
            time_unix_nano: unix_ns,
            severity: Severity::Warn,
            body: self.body(),
            attributes,
            event_name: self.kind.name(),
        }
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The receiver's own resource: `service.name` = `otel-ebpf-receiver`, `host.name` (left out
/// when empty), `telemetry.sdk.*`.
pub fn receiver_resource(host_name: &str) -> Attributes {
    let mut a = Attributes::new();
    a.push(res::SERVICE_NAME, value::SDK_NAME);
    if !host_name.is_empty() {
        a.push(res::HOST_NAME, host_name.to_string());
    }
    a.push(res::TELEMETRY_SDK_NAME, value::SDK_NAME);
    a.push(res::TELEMETRY_SDK_LANGUAGE, value::SDK_LANGUAGE);
    a.push(res::TELEMETRY_SDK_VERSION, env!("CARGO_PKG_VERSION"));
    a
}

/// One batch with a record per anomaly (in order) under `resource` (see
/// [`receiver_resource`]), stamped `unix_ns` (Unix ns); `None` when there is no anomaly.
pub fn logs_batch(anomalies: &[Anomaly], resource: &Attributes, unix_ns: u64) -> Option<LogsBatch> {
    if anomalies.is_empty() {
        return None;
    }
    Some(LogsBatch {
        resource: resource.clone(),
        log_records: anomalies.iter().map(|a| a.to_log_record(unix_ns)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    const S: u64 = 1_000_000_000;
    const W: u64 = 10 * S;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn anomaly(kind: AnomalyKind, peer: Option<IpAddr>) -> Anomaly {
        Anomaly {
            kind,
            window_start_ns: 0,
            window_ns: W,
            count: 250,
            attempts: 300,
            ratio: 250.0 / 300.0,
            peer,
            pids: vec![7, 8],
        }
    }

    fn attr<'a>(r: &'a LogRecord, k: &str) -> Option<&'a AttrValue> {
        r.attributes.get(k)
    }

    #[test]
    fn reset_storm_log_record_fields() {
        let a = anomaly(AnomalyKind::ResetStorm, Some(ip(2)));
        let r = a.to_log_record(1_795_255_200_000_000_000);
        assert_eq!(r.time_unix_nano, 1_795_255_200_000_000_000);
        assert_eq!((r.severity.number(), r.severity.text()), (13, "WARN"));
        assert_eq!(r.event_name, "tcp.reset_storm");
        assert_eq!(r.body, "250 resets in 10s (peer 10.0.0.2)");
        let keys: Vec<&str> = r.attributes.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![
                "otel_ebpf.anomaly.type",
                "otel_ebpf.anomaly.count",
                "otel_ebpf.anomaly.window",
                "network.peer.address",
                "otel_ebpf.anomaly.pids"
            ]
        );
        let r = a.to_log_record(0);
        let s = |v: &'static str| Some(AttrValue::from(v));
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.type").cloned(),
            s("tcp.reset_storm")
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.count"),
            Some(&AttrValue::Int(250))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.window"),
            Some(&AttrValue::Double(10.0))
        );
        assert_eq!(attr(&r, "network.peer.address").cloned(), s("10.0.0.2"));
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.pids"),
            Some(&AttrValue::IntArray(vec![7, 8]))
        );
    }

    #[test]
    fn connect_failure_and_spike_log_records() {
        let mut a = anomaly(AnomalyKind::ConnectFailures, None);
        a.window_ns = S / 2;
        let r = a.to_log_record(5);
        assert_eq!(r.event_name, "tcp.connect_failures");
        assert_eq!(r.body, "250 of 300 connects failed (83%) in 0.5s");
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.attempts"),
            Some(&AttrValue::Int(300))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.ratio"),
            Some(&AttrValue::Double(250.0 / 300.0))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.window"),
            Some(&AttrValue::Double(0.5))
        );
        assert_eq!(attr(&r, "network.peer.address"), None);

        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut a = anomaly(AnomalyKind::PeerConnectionSpike, Some(v6));
        a.pids.clear();
        a.count = u64::MAX;
        let r = a.to_log_record(5);
        assert_eq!(r.event_name, "tcp.peer_connection_spike");
        assert_eq!(
            r.body,
            format!("{} connections accepted from ::1 in 10s", u64::MAX)
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.count"),
            Some(&AttrValue::Int(i64::MAX))
        );
        assert_eq!(attr(&r, "otel_ebpf.anomaly.attempts"), None);
        assert_eq!(attr(&r, "otel_ebpf.anomaly.ratio"), None);
        assert_eq!(attr(&r, "otel_ebpf.anomaly.pids"), None);
    }

    #[test]
    fn logs_batch_holds_every_anomaly_under_the_receiver_resource() {
        let res = receiver_resource("host-1");
        assert_eq!(logs_batch(&[], &res, 1), None);
        let list = [
            anomaly(AnomalyKind::ResetStorm, Some(ip(1))),
            anomaly(AnomalyKind::PeerConnectionSpike, Some(ip(2))),
        ];
        let batch = logs_batch(&list, &res, 77).unwrap();
        let rattr = |k: &str| batch.resource.get(k).and_then(AttrValue::as_str);
        assert_eq!(rattr("service.name"), Some("otel-ebpf-receiver"));
        assert_eq!(rattr("host.name"), Some("host-1"));
        assert_eq!(rattr("telemetry.sdk.language"), Some("rust"));
        assert_eq!(
            batch.log_records,
            vec![list[0].to_log_record(77), list[1].to_log_record(77)]
        );
        // An empty host name is left out.
        let res = receiver_resource("");
        assert_eq!(res.get("host.name"), None);
        assert_eq!(res.len(), 4);
    }
}
