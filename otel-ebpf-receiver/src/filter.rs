//! Include/exclude filters on processes and connection ports.
//!
//! Stage: user space, between event decoding and span building (any stage that knows a pid,
//! an executable or a connection's [`Tuple`] may ask). Input: [`config::Filters`] (validated:
//! no value both included and excluded). Output: yes/no answers, O(1) per question.
//! Rules: exclude lists win; an empty include list includes everything; for processes, the
//! two include lists (`include_pids`, `include_executables`) are alternatives (either match
//! suffices); ports match when either end of the connection has the port.
//! Limits: executables are matched as given by the caller, ideally the target of
//! `/proc/<pid>/exe`; a 15-byte `comm` name only matches entries that short. The probes apply
//! the pid and port lists themselves (`probes::KernelFilters`), so that traffic never reaches
//! the ring buffer; this user-space filter applies every list again (and is the only one for
//! executables); what it drops is counted in `SelfMetrics::spans_filtered`.

use crate::config;
use crate::events::Tuple;
use crate::hash::{HashSet, HashSetExt};
use std::net::SocketAddr;

/// Executables to match: bare names against the file name, paths against the whole path.
#[derive(Clone, Debug, Default)]
struct Executables {
    names: HashSet<String>,
    paths: HashSet<String>,
}

impl Executables {
    fn new(list: &[String]) -> Self {
        let (paths, names) = list.iter().cloned().partition(|e| e.contains('/'));
        Self { names, paths }
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.paths.is_empty()
    }

    fn matches(&self, exe: &str) -> bool {
        // The kernel shows a replaced or removed binary as "/path (deleted)".
        let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
        if exe.is_empty() {
            return false;
        }
        let name = exe.rsplit('/').next().unwrap_or(exe);
        self.paths.contains(exe) || self.names.contains(name)
    }
}

/// The compiled form of [`config::Filters`]; cheap to query from any thread (`Sync`, no
/// interior mutability). `Filter::default()` allows everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    include_pids: HashSet<u32>,
    exclude_pids: HashSet<u32>,
    include_executables: Executables,
    exclude_executables: Executables,
    include_ports: HashSet<u16>,
    exclude_ports: HashSet<u16>,
    /// Addresses (IP + port) whose connections are never captured, at either end: the
    /// receiver's own OTLP export endpoints (a collector on this host would otherwise get a
    /// SERVER span per export request).
    exclude_endpoints: HashSet<SocketAddr>,
}

impl Filter {
    /// Same filter, also refusing connections with one of `endpoints` at either end
    /// (IPv4-mapped IPv6 addresses match their IPv4 form).
    pub fn with_excluded_endpoints(
        mut self,
        endpoints: impl IntoIterator<Item = SocketAddr>,
    ) -> Self {
        self.exclude_endpoints
            .extend(endpoints.into_iter().map(canonical));
        self
    }

    /// Builds the filter from the config section `receiver.filters`.
    pub fn new(filters: &config::Filters) -> Self {
        Self {
            include_pids: filters.include_pids.iter().copied().collect(),
            exclude_pids: filters.exclude_pids.iter().copied().collect(),
            include_executables: Executables::new(&filters.include_executables),
            exclude_executables: Executables::new(&filters.exclude_executables),
            include_ports: filters.include_ports.iter().copied().collect(),
            exclude_ports: filters.exclude_ports.iter().copied().collect(),
            exclude_endpoints: HashSet::new(),
        }
    }

    /// Whether the process is captured. `pid` is the process id (tgid); `executable_name` is the
    /// executable's path (from `/proc/<pid>/exe`, a trailing ` (deleted)` is ignored) or its
    /// bare name, `""` when unknown (then only pid rules can match it).
    ///
    /// False when the pid or the executable is excluded; otherwise true when no include list
    /// is set or when the pid or the executable is included.
    pub fn allows_process(&self, pid: u32, executable_name: &str) -> bool {
        if self.exclude_pids.contains(&pid) || self.exclude_executables.matches(executable_name) {
            return false;
        }
        if self.include_pids.is_empty() && self.include_executables.is_empty() {
            return true;
        }
        self.include_pids.contains(&pid) || self.include_executables.matches(executable_name)
    }

    /// Whether a connection is captured, by its ports. False when the local or the remote port
    /// is excluded; otherwise true when `include_ports` is empty or holds the local or the
    /// remote port. An unknown tuple (`None`) is allowed only when `include_ports` is empty
    /// (it cannot be shown to match); ask again once the tuple is known.
    pub fn allows_ports(&self, tuple: Option<&Tuple>) -> bool {
        let Some(t) = tuple else {
            return self.include_ports.is_empty();
        };
        let (local, remote) = (t.local.port(), t.remote.port());
        if self.exclude_ports.contains(&local) || self.exclude_ports.contains(&remote) {
            return false;
        }
        if !self.exclude_endpoints.is_empty()
            && (self.exclude_endpoints.contains(&canonical(t.local))
                || self.exclude_endpoints.contains(&canonical(t.remote)))
        {
            return false;
        }
        self.include_ports.is_empty()
            || self.include_ports.contains(&local)
            || self.include_ports.contains(&remote)
    }

    /// True when no process rule is set: [`Self::allows_process`] is always true, so callers
    /// may skip looking up executables.
    pub fn allows_all_processes(&self) -> bool {
        self.include_pids.is_empty()
            && self.exclude_pids.is_empty()
            && self.include_executables.is_empty()
            && self.exclude_executables.is_empty()
    }

    /// True when no port rule is set: [`Self::allows_ports`] is always true.
    pub fn allows_all_ports(&self) -> bool {
        self.include_ports.is_empty()
            && self.exclude_ports.is_empty()
            && self.exclude_endpoints.is_empty()
    }
}

/// `a` with an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) turned into its IPv4 form.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl From<&config::Filters> for Filter {
    fn from(filters: &config::Filters) -> Self {
        Self::new(filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Filters;

    fn tuple(local: u16, remote: u16) -> Tuple {
        Tuple {
            local: format!("10.0.0.1:{local}").parse().unwrap(),
            remote: format!("[2001:db8::2]:{remote}").parse().unwrap(),
        }
    }

    #[test]
    fn export_endpoints_are_excluded_at_either_end() {
        let t = |l: &str, r: &str| Tuple {
            local: l.parse().unwrap(),
            remote: r.parse().unwrap(),
        };
        let f = Filter::default().with_excluded_endpoints(["127.0.0.1:4317".parse().unwrap()]);
        assert!(!f.allows_all_ports());
        // The collector's side of our export connection, and a mapped IPv6 form.
        assert!(!f.allows_ports(Some(&t("127.0.0.1:4317", "127.0.0.1:50000"))));
        assert!(!f.allows_ports(Some(&t("[::ffff:127.0.0.1]:4317", "[::1]:50000"))));
        assert!(!f.allows_ports(Some(&t("127.0.0.1:50001", "127.0.0.1:4317"))));
        // Same port elsewhere, other ports on the same address: kept.
        assert!(f.allows_ports(Some(&t("10.0.0.1:4317", "10.0.0.2:50000"))));
        assert!(f.allows_ports(Some(&t("127.0.0.1:8080", "127.0.0.1:50000"))));
        assert!(Filter::default().allows_all_ports());
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_filters_allow_everything() {
        for f in [Filter::default(), Filter::new(&Filters::default())] {
            assert!(f.allows_all_processes() && f.allows_all_ports());
            assert!(f.allows_process(1, "/usr/sbin/nginx"));
            assert!(f.allows_process(4242, ""));
            assert!(f.allows_ports(Some(&tuple(80, 50000))));
            assert!(f.allows_ports(None));
        }
    }

    #[test]
    fn include_pids_only() {
        let f = Filter::new(&Filters {
            include_pids: vec![10, 20],
            ..Default::default()
        });
        assert!(!f.allows_all_processes());
        assert!(f.allows_all_ports());
        assert!(f.allows_process(10, "a"));
        assert!(f.allows_process(20, ""));
        assert!(!f.allows_process(30, "a"));
    }

    #[test]
    fn exclude_pids_win() {
        let f = Filter::new(&Filters {
            include_executables: strings(&["curl"]),
            exclude_pids: vec![7],
            ..Default::default()
        });
        assert!(f.allows_process(8, "/usr/bin/curl"));
        assert!(!f.allows_process(7, "/usr/bin/curl"));
        assert!(!f.allows_process(8, "/usr/bin/wget"));
    }

    #[test]
    fn include_lists_are_alternatives() {
        let f = Filter::new(&Filters {
            include_pids: vec![1],
            include_executables: strings(&["nginx"]),
            ..Default::default()
        });
        assert!(f.allows_process(1, "/usr/bin/bash"));
        assert!(f.allows_process(2, "/usr/sbin/nginx"));
        assert!(!f.allows_process(2, "/usr/bin/bash"));
    }

    #[test]
    fn executable_names_and_paths() {
        let f = Filter::new(&Filters {
            include_executables: strings(&["nginx", "/opt/app/bin/server"]),
            exclude_executables: strings(&["/usr/local/bin/nginx"]),
            ..Default::default()
        });
        // A bare name matches the file name, wherever it lives, and a bare name given.
        assert!(f.allows_process(1, "/usr/sbin/nginx"));
        assert!(f.allows_process(1, "nginx"));
        assert!(f.allows_process(1, "/usr/sbin/nginx (deleted)"));
        // A path matches exactly that path.
        assert!(f.allows_process(1, "/opt/app/bin/server"));
        assert!(!f.allows_process(1, "/usr/bin/server"));
        assert!(!f.allows_process(1, "server"));
        // Excluded path wins over the included name.
        assert!(!f.allows_process(1, "/usr/local/bin/nginx"));
        // No partial or case-insensitive matches; unknown names match no executable rule.
        assert!(!f.allows_process(1, "/usr/sbin/nginx-debug"));
        assert!(!f.allows_process(1, "NGINX"));
        assert!(!f.allows_process(1, ""));
    }

    #[test]
    fn exclude_executables_only() {
        let f = Filter::new(&Filters {
            exclude_executables: strings(&["sshd"]),
            ..Default::default()
        });
        assert!(!f.allows_process(1, "/usr/sbin/sshd"));
        assert!(f.allows_process(1, "/usr/sbin/nginx"));
        assert!(f.allows_process(1, ""));
    }

    #[test]
    fn include_ports_match_either_end() {
        let f = Filter::new(&Filters {
            include_ports: vec![8080],
            ..Default::default()
        });
        assert!(f.allows_all_processes());
        assert!(!f.allows_all_ports());
        assert!(f.allows_ports(Some(&tuple(8080, 51000))));
        assert!(f.allows_ports(Some(&tuple(51000, 8080))));
        assert!(!f.allows_ports(Some(&tuple(80, 51000))));
        assert!(!f.allows_ports(None));
    }

    #[test]
    fn exclude_ports_win_at_either_end() {
        let f = Filter::new(&Filters {
            include_ports: vec![8080],
            exclude_ports: vec![22],
            ..Default::default()
        });
        assert!(!f.allows_ports(Some(&tuple(8080, 22))));
        assert!(!f.allows_ports(Some(&tuple(22, 8080))));
        let f = Filter::from(&Filters {
            exclude_ports: vec![22],
            ..Default::default()
        });
        assert!(!f.allows_ports(Some(&tuple(22, 50000))));
        assert!(!f.allows_ports(Some(&tuple(50000, 22))));
        assert!(f.allows_ports(Some(&tuple(80, 50000))));
        assert!(f.allows_ports(None));
    }
}
