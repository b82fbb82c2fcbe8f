//! Export: console, OTLP/gRPC and OTLP/HTTP for traces and metrics.
//!
//! Stage: span/enrich → **export**. Input: observed spans with their process resource.
//! Output: OTLP export requests (batched, bounded queue, retries), or console lines.
