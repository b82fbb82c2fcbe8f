//! Wiring: ring buffer → decode → conn → span → export, plus self-telemetry.
