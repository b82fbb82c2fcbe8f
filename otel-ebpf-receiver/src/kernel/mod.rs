//! Kernel network timing and TCP health (issue 6).
pub mod anomaly;
