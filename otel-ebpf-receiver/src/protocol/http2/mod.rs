//! HTTP/2 (RFC 9113) cleartext: frames, HPACK, streams, gRPC.
//!
//! Stage: conn → **protocol::http2** → span. Input: the syscalls of one connection detected as
//! HTTP/2 (prior-knowledge preface, server SETTINGS first, an `Upgrade: h2c` answered by 101, or
//! a plausible frame sequence on a connection joined mid-way), per direction, with ts (ns),
//! captured bytes and full byte count. Output: one [`crate::protocol::HttpExchange`] per stream
//! (request → response, paired by stream id), with gRPC details when the content-type is
//! `application/grpc*`. Parsers do no IO and never panic.
//!
//! Submodules: [`frame`] (frame decoder per direction), [`hpack`] (header blocks), [`detect`]
//! (is this HTTP/2), [`stream`] (per-stream state → exchange), [`connection`] (everything of one
//! connection), [`parser`] (its detector and connection-tracker interface).

pub mod connection;
pub mod detect;
pub mod frame;
mod handlers;
pub mod hpack;
pub mod parser;
pub mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::enc as tests_enc;

pub use connection::{Http2Connection, Http2Stats};

/// The client connection preface (RFC 9113 §3.4), 24 octets.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
