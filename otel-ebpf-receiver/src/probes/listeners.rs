//! Listening sockets that existed before the receiver started, for the probes' `LISTENERS`
//! map (listening port → process), so accepted connections of an already-running server are
//! attributed to it (new listeners are recorded by the probes at `inet_sock_set_state` →
//! LISTEN).
//!
//! Stage: probes (start-up, once, with kernel timing on). Input: `/proc/<pid>/fd` (socket
//! inodes), `/proc/<pid>/ns/net` (network namespace inode) and `/proc/<pid>/net/tcp{,6}` of
//! one process per namespace, read with the `procfs` crate. Output: ([`listener_key`],
//! tgid) pairs. Limits: a socket shared by several processes (a forking server's workers)
//! goes to the lowest pid, usually the parent; processes that vanish while being read are
//! skipped; errors reading one process never stop the scan.

use otel_ebpf_common::listener_key;
use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;

/// One process's view: its network namespace and the socket inodes among its fds.
struct ProcSockets {
    pid: u32,
    netns: u32,
    sockets: Vec<u64>,
}

fn proc_sockets(p: &Process) -> Option<ProcSockets> {
    let netns = std::fs::metadata(format!("/proc/{}/ns/net", p.pid))
        .ok()?
        .ino() as u32;
    let sockets = p
        .fd()
        .ok()?
        .filter_map(|fd| match fd.ok()?.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    Some(ProcSockets {
        pid: p.pid as u32,
        netns,
        sockets,
    })
}

/// Listening TCP sockets (IPv4 and IPv6) seen from `p`'s network namespace: inode → port.
fn listening(p: &Process) -> HashMap<u64, u16> {
    let mut out = HashMap::new();
    for table in [p.tcp(), p.tcp6()].into_iter().flatten() {
        for e in table {
            if e.state == TcpState::Listen && e.inode != 0 {
                out.insert(e.inode, e.local_address.port());
            }
        }
    }
    out
}

/// Pairs each listening socket (inode → port per namespace) with the lowest pid holding it.
fn pair(procs: &[ProcSockets], listen: &HashMap<u32, HashMap<u64, u16>>) -> Vec<(u64, u32)> {
    let mut owner: BTreeMap<u64, u32> = BTreeMap::new();
    for p in procs {
        let Some(ports) = listen.get(&p.netns) else {
            continue;
        };
        for inode in &p.sockets {
            if let Some(port) = ports.get(inode) {
                let e = owner.entry(listener_key(p.netns, *port)).or_insert(p.pid);
                *e = (*e).min(p.pid);
            }
        }
    }
    owner.into_iter().collect()
}

/// The listeners of every process but `own_pid`: ([`listener_key`], tgid), sorted by key.
pub fn existing(own_pid: u32) -> Vec<(u64, u32)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut procs = Vec::new();
    let mut listen: HashMap<u32, HashMap<u64, u16>> = HashMap::new();
    for p in all.flatten() {
        if p.pid as u32 == own_pid {
            continue;
        }
        let Some(ps) = proc_sockets(&p) else {
            continue;
        };
        if ps.sockets.is_empty() {
            continue;
        }
        listen.entry(ps.netns).or_insert_with(|| listening(&p));
        procs.push(ps);
    }
    pair(&procs, &listen)
}

/// Writes [`existing`] into the probes' `LISTENERS` map (called after `inet_sock_set_state`
/// is attached, so a listener opened during the scan is recorded by the probe). Returns how
/// many were written; an error names the map operation that failed.
pub fn seed(ebpf: &mut aya::Ebpf, own_pid: u32) -> Result<usize, String> {
    let mut map: aya::maps::HashMap<_, u64, u32> = ebpf
        .map_mut("LISTENERS")
        .ok_or("no LISTENERS map in the probes")?
        .try_into()
        .map_err(|e| format!("LISTENERS: {e}"))?;
    let found = existing(own_pid);
    for (key, pid) in &found {
        map.insert(key, pid, 0)
            .map_err(|e| format!("LISTENERS insert: {e}"))?;
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_listening_inodes_with_lowest_pid_per_namespace() {
        let procs = [
            ProcSockets {
                pid: 30,
                netns: 1,
                sockets: vec![100, 101],
            },
            ProcSockets {
                pid: 20,
                netns: 1,
                sockets: vec![100],
            },
            ProcSockets {
                pid: 40,
                netns: 2,
                sockets: vec![100, 7],
            },
        ];
        let mut listen = HashMap::new();
        listen.insert(1, HashMap::from([(100, 8080u16)]));
        listen.insert(2, HashMap::from([(7, 8080u16)]));
        assert_eq!(
            pair(&procs, &listen),
            vec![(listener_key(1, 8080), 20), (listener_key(2, 8080), 40)]
        );
    }

    #[test]
    fn finds_a_real_listener_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id();
        let netns = std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        let found = existing(0);
        assert!(
            found.contains(&(listener_key(netns, port), me)),
            "port {port} of pid {me} not among {} listeners",
            found.len()
        );
        // Our own pid is left out.
        assert!(!existing(me).iter().any(|(_, p)| *p == me));
    }
}
