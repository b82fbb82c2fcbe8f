//! Log records in the test support: request builders, readers of what a collector received,
//! log self-metrics, and the collector's OTLP `LogsService` (scripted failures and partial
//! success like the other signals).

use std::sync::atomic::Ordering;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::{Collector, kv_s, metadata_pairs};
use crate::telemetry::SelfMetrics;

/// A logs batch (our model, what a `LogsSource` yields): one resource with `service.name`
/// and one WARN record (`event_name` `test.event`, time 1000 ns) per body.
pub fn logs_batch(service: &str, bodies: &[&str]) -> crate::model::LogsBatch {
    use crate::model::{LogRecord, Severity};
    let mut resource = crate::attr::Attributes::new();
    resource.push("service.name", service.to_string());
    crate::model::LogsBatch {
        resource,
        log_records: bodies
            .iter()
            .map(|b| LogRecord {
                time_unix_nano: 1_000,
                severity: Severity::Warn,
                body: b.to_string(),
                attributes: crate::attr::Attributes::new(),
                event_name: "test.event",
            })
            .collect(),
    }
}

/// A logs request: per `(service.name, bodies)`, one resource with one WARN record
/// (`event_name` `test.event`) per body.
pub fn logs_request(groups: &[(&str, &[&str])]) -> ExportLogsServiceRequest {
    let resource_logs = groups.iter().map(|(service, bodies)| ResourceLogs {
        resource: Some(Resource {
            attributes: vec![kv_s("service.name", service)],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: bodies
                .iter()
                .map(|b| LogRecord {
                    time_unix_nano: 1_000,
                    severity_number: 13,
                    severity_text: "WARN".into(),
                    event_name: "test.event".into(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(b.to_string())),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    });
    ExportLogsServiceRequest {
        resource_logs: resource_logs.collect(),
    }
}

/// Bodies of the log records received, in arrival order.
pub fn log_bodies(c: &Collector) -> Vec<String> {
    c.state()
        .logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .map(|r| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            v => panic!("{v:?}"),
        })
        .collect()
}

/// (log records exported, log records dropped, failures) self-metrics.
pub fn log_counts(m: &SelfMetrics) -> (u64, u64, u64) {
    (
        m.log_records_exported.load(Ordering::Relaxed),
        m.log_records_dropped.load(Ordering::Relaxed),
        m.export_failures.load(Ordering::Relaxed),
    )
}

impl Collector {
    pub(super) fn logs_response(&self) -> ExportLogsServiceResponse {
        let reject = self.state().reject_logs;
        ExportLogsServiceResponse {
            partial_success: (reject > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: reject,
                error_message: "too many".into(),
            }),
        }
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        if let Some(code) = self.record(metadata_pairs(req.metadata())) {
            return Err(tonic::Status::new(
                tonic::Code::from_i32(code as i32),
                "scripted failure",
            ));
        }
        self.state().logs.push(req.into_inner());
        Ok(tonic::Response::new(self.logs_response()))
    }
}
