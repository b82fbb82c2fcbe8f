//! Probe loading and attaching.
//!
//! Stage: **probes** → events. Input: the embedded BPF object, this kernel's BTF and tracefs.
//! Output: attached programs and the ring buffer to read.
