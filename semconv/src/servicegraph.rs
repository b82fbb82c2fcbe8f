//! Service graph metrics, named as the Collector's `servicegraph` connector and Tempo's
//! metrics-generator name them, so their service-graph views read them as they are.
//!
//! Stage: none (shared names). Input: nothing. Output: OTLP metric names (already in Prometheus
//! form: the Prometheus exporter keeps them, adding `_seconds` to the histograms) and the edge
//! label names. One data point per edge (client service → server service) and interval.

/// Counter ({request}): requests from `client` to `server`.
pub const REQUEST_TOTAL: &str = "traces_service_graph_request_total";
/// Counter ({request}): failed requests from `client` to `server`.
pub const REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
/// Histogram (s): request duration seen by the server.
pub const REQUEST_SERVER: &str = "traces_service_graph_request_server";
/// Histogram (s): request duration seen by the client.
pub const REQUEST_CLIENT: &str = "traces_service_graph_request_client";
/// Unit of the two histograms.
pub const UNIT_SECONDS: &str = "s";

/// Label: the calling service's `service.name`.
pub const LABEL_CLIENT: &str = "client";
/// Label: the called service's `service.name`.
pub const LABEL_SERVER: &str = "server";
/// Label: `virtual_node` when one end is not observed (named from its address), else absent.
pub const LABEL_CONNECTION_TYPE: &str = "connection_type";
