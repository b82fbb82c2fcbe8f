//! tracefs mount point discovery (for `check`'s report only).
//!
//! Input: the standard mount points. Output: where tracefs is mounted, if it is. The probes
//! attach raw tracepoints and uprobes without tracefs; tools such as bpftrace need it.

use std::path::PathBuf;

/// Where tracefs is mounted, if it is (`/sys/kernel/tracing`, else the debugfs path).
pub fn root() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}
