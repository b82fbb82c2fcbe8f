//! Anomalies as OTLP log records.
//!
//! Stage: anomaly detection → **log records** → export (`LogsSource`). Input: [`Anomaly`]s,
//! the receiver's own resource ([`receiver_resource`]) and the current Unix time (ns).
//! Output: one `LogRecord` per anomaly — severity WARN (`SeverityNumber` 13), `event_name` the
//! kind's name, a one-line human body, attributes from `otel_ebpf_semconv::anomaly` — and one
//! `ExportLogsServiceRequest` holding them under one resource and the `otel-ebpf-receiver`
//! scope. Source: OTel logs data model
//! (<https://opentelemetry.io/docs/specs/otel/logs/data-model/>).
//! Limits: the record time is the time of the conversion, not the window's (the window start
//! is on the monotonic clock); at most [`super::MAX_PIDS`] pids per record.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use otel_ebpf_semconv::{anomaly as names, resource as res, value};

use super::{Anomaly, AnomalyKind};
use crate::attr::Attributes;
use crate::export::otlp::{self, kv, kv_int, kv_str};

/// Severity text of every anomaly record.
const SEVERITY_TEXT: &str = "WARN";

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
        let mut attributes = vec![
            kv_str(names::TYPE, self.kind.name()),
            kv_int(names::COUNT, clamp_i64(self.count)),
            kv(names::WINDOW, Value::DoubleValue(self.window_seconds())),
        ];
        if let Some(p) = self.peer {
            attributes.push(kv_str(names::NETWORK_PEER_ADDRESS, &p.to_string()));
        }
        if self.kind == AnomalyKind::ConnectFailures {
            attributes.push(kv_int(names::ATTEMPTS, clamp_i64(self.attempts)));
            attributes.push(kv(names::RATIO, Value::DoubleValue(self.ratio)));
        }
        if !self.pids.is_empty() {
            let values = self
                .pids
                .iter()
                .map(|p| AnyValue {
                    value: Some(Value::IntValue(i64::from(*p))),
                })
                .collect();
            attributes.push(kv(names::PIDS, Value::ArrayValue(ArrayValue { values })));
        }
        LogRecord {
            time_unix_nano: unix_ns,
            observed_time_unix_nano: unix_ns,
            severity_number: SeverityNumber::Warn as i32,
            severity_text: SEVERITY_TEXT.into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(self.body())),
            }),
            attributes,
            event_name: self.kind.name().into(),
            ..Default::default()
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

/// One logs request with a record per anomaly (in order) under `resource` (see
/// [`receiver_resource`]), stamped `unix_ns` (Unix ns); `None` when there is no anomaly.
pub fn logs_request(
    anomalies: &[Anomaly],
    resource: &Attributes,
    unix_ns: u64,
) -> Option<ExportLogsServiceRequest> {
    if anomalies.is_empty() {
        return None;
    }
    let scope = crate::export::batch::scope();
    Some(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(otlp::resource(resource)),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope),
                log_records: anomalies.iter().map(|a| a.to_log_record(unix_ns)).collect(),
                schema_url: otel_ebpf_semconv::otel::SCHEMA_URL.into(),
            }],
            schema_url: String::new(),
        }],
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use opentelemetry_proto::tonic::common::v1::ArrayValue;

    use super::*;
    use crate::export::otlp::find_attr;

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

    fn attr<'a>(
        r: &'a opentelemetry_proto::tonic::logs::v1::LogRecord,
        k: &str,
    ) -> Option<&'a Value> {
        find_attr(&r.attributes, k)
    }

    #[test]
    fn reset_storm_log_record_fields() {
        let a = anomaly(AnomalyKind::ResetStorm, Some(ip(2)));
        let r = a.to_log_record(1_795_255_200_000_000_000);
        assert_eq!(r.time_unix_nano, 1_795_255_200_000_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_795_255_200_000_000_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "WARN"));
        assert_eq!(r.event_name, "tcp.reset_storm");
        assert_eq!(
            r.body.clone().unwrap().value,
            Some(Value::StringValue(
                "250 resets in 10s (peer 10.0.0.2)".into()
            ))
        );
        let keys: Vec<&str> = r.attributes.iter().map(|kv| kv.key.as_str()).collect();
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
        let s = |v: &str| Some(Value::StringValue(v.into()));
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.type").cloned(),
            s("tcp.reset_storm")
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.count"),
            Some(&Value::IntValue(250))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.window"),
            Some(&Value::DoubleValue(10.0))
        );
        assert_eq!(attr(&r, "network.peer.address").cloned(), s("10.0.0.2"));
        let pids = |v: i64| AnyValue {
            value: Some(Value::IntValue(v)),
        };
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.pids"),
            Some(&Value::ArrayValue(ArrayValue {
                values: vec![pids(7), pids(8)]
            }))
        );
    }

    #[test]
    fn connect_failure_and_spike_log_records() {
        let mut a = anomaly(AnomalyKind::ConnectFailures, None);
        a.window_ns = S / 2;
        let r = a.to_log_record(5);
        assert_eq!(r.event_name, "tcp.connect_failures");
        assert_eq!(
            r.body.clone().unwrap().value,
            Some(Value::StringValue(
                "250 of 300 connects failed (83%) in 0.5s".into()
            ))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.attempts"),
            Some(&Value::IntValue(300))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.ratio"),
            Some(&Value::DoubleValue(250.0 / 300.0))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.window"),
            Some(&Value::DoubleValue(0.5))
        );
        assert_eq!(attr(&r, "network.peer.address"), None);

        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut a = anomaly(AnomalyKind::PeerConnectionSpike, Some(v6));
        a.pids.clear();
        a.count = u64::MAX;
        let r = a.to_log_record(5);
        assert_eq!(r.event_name, "tcp.peer_connection_spike");
        assert_eq!(
            r.body.clone().unwrap().value,
            Some(Value::StringValue(format!(
                "{} connections accepted from ::1 in 10s",
                u64::MAX
            )))
        );
        assert_eq!(
            attr(&r, "otel_ebpf.anomaly.count"),
            Some(&Value::IntValue(i64::MAX))
        );
        assert_eq!(attr(&r, "otel_ebpf.anomaly.attempts"), None);
        assert_eq!(attr(&r, "otel_ebpf.anomaly.ratio"), None);
        assert_eq!(attr(&r, "otel_ebpf.anomaly.pids"), None);
    }

    #[test]
    fn logs_request_holds_every_anomaly_under_the_receiver_resource() {
        let res = receiver_resource("host-1");
        assert_eq!(logs_request(&[], &res, 1), None);
        let list = [
            anomaly(AnomalyKind::ResetStorm, Some(ip(1))),
            anomaly(AnomalyKind::PeerConnectionSpike, Some(ip(2))),
        ];
        let req = logs_request(&list, &res, 77).unwrap();
        assert_eq!(req.resource_logs.len(), 1);
        let rl = &req.resource_logs[0];
        let rattr = |k: &str| find_attr(&rl.resource.as_ref().unwrap().attributes, k).cloned();
        let s = |v: &str| Some(Value::StringValue(v.into()));
        assert_eq!(rattr("service.name"), s("otel-ebpf-receiver"));
        assert_eq!(rattr("host.name"), s("host-1"));
        assert_eq!(rattr("telemetry.sdk.language"), s("rust"));
        let sl = &rl.scope_logs[0];
        assert_eq!(sl.scope.as_ref().unwrap().name, "otel-ebpf-receiver");
        let got: Vec<_> = sl.log_records.clone();
        assert_eq!(
            got,
            vec![list[0].to_log_record(77), list[1].to_log_record(77)]
        );
        // An empty host name is left out.
        let res = receiver_resource("");
        assert_eq!(res.get("host.name"), None);
        assert_eq!(res.len(), 4);
    }
}
