//! Span building.
//!
//! Stage: protocol → **span** → enrich/export. Input: an [`crate::protocol::HttpExchange`].
//! Output: an OTLP span with the stable HTTP semantic-convention attributes.

use opentelemetry_proto::tonic::trace::v1::Span;

/// A span observed for process `pid` (its resource is attached in export).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSpan {
    pub pid: u32,
    pub span: Span,
}
