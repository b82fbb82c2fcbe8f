//! Which request a thread is serving: the evidence for in-process causality.
//!
//! Stage: span (inner step, fed by every data event before the connection tracker). Input:
//! [`DataEvent`]s with the socket's role (connect: client, accept: server). Output, per
//! client exchange: the server connection its thread was serving while it sent the request
//! ([`Threads::cause_of`]), or nothing.
//!
//! Rule (thread-per-request servers: Python threading servers, Java, Ruby/PHP workers, C/C++
//! pools): a thread that read from a server connection X and has not yet written to it is
//! *serving* X; a client request written by that thread meanwhile is caused by the request
//! on X. A thread seen reading a second server connection while still serving another is an
//! event loop (nginx, Node.js, Go netpoll, gRPC pollers): it is marked multiplexed for good
//! and never yields a cause — when in doubt, no parent.
//!
//! Limits: at most [`MAX_THREADS`] threads and [`MAX_CAUSES`] client connections are tracked;
//! past that the tables are cleared (links are lost, never wrong). Pure code, no IO.

use crate::events::DataEvent;
use crate::hash::{HashMap, HashSet};
use crate::protocol::TLS_STREAM;
use otel_ebpf_common::{Direction, SockRole};

/// Most threads with serving state.
pub const MAX_THREADS: usize = 65_536;
/// Most client connections with a recorded cause.
pub const MAX_CAUSES: usize = 65_536;

/// Serving state of every thread and the causes of client writes.
#[derive(Debug, Default)]
pub struct Threads {
    /// (pid, tid) → the server connection (stream key) it is serving.
    serving: HashMap<(u32, u32), u64>,
    /// Threads seen serving two connections at once.
    multiplexed: HashSet<(u32, u32)>,
    /// (pid, client stream key) → (ts of the latest write while serving, server stream key).
    causes: HashMap<(u32, u64), (u64, u64)>,
}

/// The stream key the connection tracker uses for this event (TLS plaintext streams are keyed
/// by session, see [`crate::conn`]).
fn stream_key(d: &DataEvent) -> u64 {
    match d.tls {
        Some(t) => TLS_STREAM | (t.session & 0xffff_ffff_ffff),
        None => d.conn_id,
    }
}

impl Threads {
    /// Updates the state with one data event.
    pub fn on_data(&mut self, d: &DataEvent) {
        let thread = (d.pid, d.tid);
        let key = stream_key(d);
        match (d.role, d.direction) {
            (SockRole::Server, Direction::Ingress) => {
                if self.serving.len() >= MAX_THREADS {
                    self.serving.clear();
                }
                if let Some(prev) = self.serving.insert(thread, key)
                    && prev != key
                    && self.multiplexed.len() < MAX_THREADS
                {
                    self.multiplexed.insert(thread);
                }
            }
            (SockRole::Server, Direction::Egress) if self.serving.get(&thread) == Some(&key) => {
                self.serving.remove(&thread);
            }
            (SockRole::Client, Direction::Egress) => {
                let Some(&server) = self.serving.get(&thread) else {
                    return;
                };
                if self.multiplexed.contains(&thread) {
                    return;
                }
                if self.causes.len() >= MAX_CAUSES {
                    self.causes.clear();
                }
                self.causes.insert((d.pid, key), (d.ts_ns, server));
            }
            _ => {}
        }
    }

    /// The server connection (stream key, same pid) whose request caused the client exchange
    /// on `conn` that ran from `start_ns` to `end_ns`: its thread was serving it while writing
    /// the request.
    pub fn cause_of(&self, pid: u32, conn: u64, start_ns: u64, end_ns: u64) -> Option<u64> {
        let &(ts, server) = self.causes.get(&(pid, conn))?;
        (start_ns..=end_ns).contains(&ts).then_some(server)
    }

    /// Forgets a process (it exited).
    pub fn forget_pid(&mut self, pid: u32) {
        self.serving.retain(|k, _| k.0 != pid);
        self.multiplexed.retain(|k| k.0 != pid);
        self.causes.retain(|k, _| k.0 != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel_ebpf_common::Syscall;

    fn ev(tid: u32, conn: u64, role: SockRole, dir: Direction, ts: u64) -> DataEvent {
        DataEvent {
            pid: 1,
            tid,
            fd: 3,
            conn_id: conn,
            ts_ns: ts,
            direction: dir,
            role,
            syscall: Syscall::Write,
            total_len: 10,
            tuple: None,
            payload: Default::default(),
            tls: None,
        }
    }

    #[test]
    fn a_thread_serving_one_request_causes_its_client_calls() {
        let mut t = Threads::default();
        t.on_data(&ev(7, 100, SockRole::Server, Direction::Ingress, 10));
        t.on_data(&ev(7, 200, SockRole::Client, Direction::Egress, 20));
        t.on_data(&ev(7, 200, SockRole::Client, Direction::Ingress, 30));
        // Another thread writing meanwhile is not serving anything.
        t.on_data(&ev(8, 300, SockRole::Client, Direction::Egress, 25));
        t.on_data(&ev(7, 100, SockRole::Server, Direction::Egress, 40));
        assert_eq!(t.cause_of(1, 200, 20, 30), Some(100));
        assert_eq!(t.cause_of(1, 300, 25, 26), None);
        // A write outside the exchange's interval belongs to another exchange.
        assert_eq!(t.cause_of(1, 200, 31, 50), None);
        // After the response the thread serves nothing.
        t.on_data(&ev(7, 200, SockRole::Client, Direction::Egress, 50));
        assert_eq!(t.cause_of(1, 200, 50, 60), None);
    }

    #[test]
    fn event_loops_never_yield_a_cause() {
        let mut t = Threads::default();
        t.on_data(&ev(7, 100, SockRole::Server, Direction::Ingress, 10));
        t.on_data(&ev(7, 101, SockRole::Server, Direction::Ingress, 11));
        t.on_data(&ev(7, 200, SockRole::Client, Direction::Egress, 20));
        assert_eq!(t.cause_of(1, 200, 20, 30), None);
        // Even later, serving one connection only: still multiplexed.
        t.on_data(&ev(7, 100, SockRole::Server, Direction::Egress, 40));
        t.on_data(&ev(7, 101, SockRole::Server, Direction::Egress, 41));
        t.on_data(&ev(7, 102, SockRole::Server, Direction::Ingress, 50));
        t.on_data(&ev(7, 201, SockRole::Client, Direction::Egress, 60));
        assert_eq!(t.cause_of(1, 201, 60, 70), None);
        t.forget_pid(1);
        assert!(t.multiplexed.is_empty() && t.serving.is_empty());
    }

    #[test]
    fn keep_alive_requests_on_one_connection_are_not_multiplexing() {
        let mut t = Threads::default();
        for i in 0..3 {
            let base = i * 100;
            t.on_data(&ev(7, 100, SockRole::Server, Direction::Ingress, base + 1));
            t.on_data(&ev(7, 100, SockRole::Server, Direction::Ingress, base + 2));
            t.on_data(&ev(7, 200, SockRole::Client, Direction::Egress, base + 3));
            assert_eq!(t.cause_of(1, 200, base + 3, base + 4), Some(100));
            t.on_data(&ev(7, 100, SockRole::Server, Direction::Egress, base + 5));
        }
    }
}
