//! Resource enrichment: who is the observed process.
//!
//! Stage: span → **enrich** → export. Input: a pid. Output: an OTLP resource for it
//! (`service.name`, `process.*`, `host.name`, `container.id`, `telemetry.sdk.*`), read from
//! /proc once per process and cached until the process exits.

use opentelemetry_proto::tonic::resource::v1::Resource;

/// Resource of one observed process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessResource {
    pub pid: u32,
    pub service_name: String,
    pub executable_name: String,
    pub resource: Resource,
}
