//! Trace linking: one trace per request chain, without touching the traffic.
//!
//! Stage: span → **link** → enrich/metrics/export. Input: finished [`SpanRecord`]s with their
//! process resource, in ring-buffer order, and the time. Output: the same spans with their
//! trace id, parent span id, sampled flag and `tracestate` set, released in an order where a
//! parent is never released after a span that names it; plus the service-graph edges
//! ([`Edge`]) found on the way. Rules, in order:
//!
//! 1. **Same-host pairing.** A SERVER span and a CLIENT span of another process are one
//!    exchange when their connection's endpoints mirror each other (client `local` = server
//!    `remote`), their network namespaces are equal, and they are the same request on it (the
//!    same HTTP/2 stream id, or the same HTTP/1 request number on a connection both saw from
//!    its start), and the server's interval lies within the client's (± [`NESTING_SLACK_NS`]).
//!    The SERVER span's parent is the CLIENT span. Either may arrive first.
//! 2. **In-process causality.** A CLIENT span whose request was written by a thread serving a
//!    server connection ([`super::threads`]) is the child of the SERVER span on that
//!    connection whose interval holds its start; on HTTP/2 server connections (many streams
//!    at once) no parent is taken.
//! 3. **Propagated context.** A request carrying `traceparent`/B3 (T, P) continues trace T:
//!    a CLIENT span gets parent P unless it only forwards the context its own SERVER span
//!    received (then rule 2); a SERVER span gets its observed CLIENT span (rule 1), else P.
//!    `tracestate` and the sampled flag come with the trace.
//!
//! Spans wait in a bounded join buffer while a decision is open, at most the configured
//! wait; a span whose wait ends with its parent still undecided cuts the chain at the
//! undecided ancestor (that ancestor becomes a root): links can be lost, never wrong.
//! Limits: at most `max_waiting` spans wait (past that the oldest is released, counted), and
//! the index of recent client spans holds at most the same number. Pure code, no IO.

use super::{SpanRecord, TraceContext};
use crate::enrich::ProcessResource;
use crate::hash::{HashMap, HashMapExt, HashSet, HashSetExt};
use crate::protocol::Side;
use crate::protocol::propagation::Propagated;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Timing slack allowed when checking that a server span lies within its client span (ns):
/// the two ends' probes fire on different CPUs around the same bytes.
pub const NESTING_SLACK_NS: u64 = 1_000_000;

/// Most distinct local addresses remembered (the peers a server may be paired with).
const MAX_LOCAL_IPS: usize = 4096;

/// Linking settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Longest time a span waits for its parent to be decided (ns).
    pub wait_ns: u64,
    /// Most spans waiting at once.
    pub max_waiting: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            wait_ns: 1_000_000_000,
            max_waiting: 65_536,
        }
    }
}

/// Counters of the linker (since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// SERVER spans paired with the CLIENT span of the same exchange on this host.
    pub paired: u64,
    /// SERVER spans whose client was on this host but not found within the wait.
    pub expired_unpaired: u64,
    /// CLIENT spans given a parent (rule 2 or 3).
    pub client_linked: u64,
    /// CLIENT spans without a parent.
    pub client_unlinked: u64,
    /// Spans released early because the join buffer was full.
    pub overflow: u64,
}

/// One service-graph edge observation: a request from `client` to `server`.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// Client node: the client process's resource, or the peer when it was not observed.
    pub client: Node,
    /// Server node.
    pub server: Node,
    /// Either side's span is an error.
    pub failed: bool,
    /// Client span duration (ns), when the client was observed.
    pub client_ns: Option<u64>,
    /// Server span duration (ns), when the server was observed.
    pub server_ns: Option<u64>,
}

/// A service-graph node.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An observed process.
    Process(Arc<ProcessResource>),
    /// A peer that was not observed (a virtual node), by address.
    Peer(SocketAddr),
}

/// The key of one request on one connection, as both ends see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PairKey {
    client: SocketAddr,
    server: SocketAddr,
    /// HTTP/2 stream id, or HTTP/1 request number + 2^32.
    which: u64,
}

impl PairKey {
    fn of(s: &SpanRecord) -> Option<Self> {
        let ex = &s.exchange;
        let t = ex.tuple?;
        let which = match (ex.context.stream_id, ex.context.seq) {
            (0, Some(seq)) => seq + (1 << 32),
            (0, None) => return None,
            (id, _) => u64::from(id),
        };
        let (client, server) = match ex.side {
            Side::Client => (t.local, t.remote),
            Side::Server => (t.remote, t.local),
        };
        Some(Self {
            client,
            server,
            which,
        })
    }
}

/// What a child needs of its parent once the parent is released.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Released {
    /// The process the parent was observed in (a parent in the same process is local).
    pid: u32,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
    trace_state: Option<Box<str>>,
}

#[derive(Clone, Debug)]
enum Parent {
    None,
    /// A waiting span (node id).
    Waiting(u64),
    /// A span already released.
    Released(Released),
    /// A context propagated in the request headers, from a process not observed.
    Remote(Propagated),
}

struct Waiting {
    res: Arc<ProcessResource>,
    span: SpanRecord,
    parent: Parent,
    decided: bool,
    children: Vec<u64>,
    /// Index key of a CLIENT span (to update its entry when released).
    key: Option<PairKey>,
}

/// A client span in the pairing index.
struct ClientEntry {
    res: Arc<ProcessResource>,
    start: u64,
    end: u64,
    error: bool,
    /// Waiting node id, or the released context.
    at: Result<u64, Released>,
    deadline: u64,
}

/// The join buffer.
pub struct Linker {
    cfg: LinkConfig,
    nodes: HashMap<u64, Waiting>,
    next_id: u64,
    /// (deadline, node id) in arrival order.
    expiry: VecDeque<(u64, u64)>,
    clients: HashMap<PairKey, ClientEntry>,
    /// (deadline, key) of client index entries, in arrival order.
    client_expiry: VecDeque<(u64, PairKey)>,
    /// Waiting SERVER nodes by key.
    servers: HashMap<PairKey, u64>,
    /// Waiting CLIENT nodes by the server connection that caused them: (pid, stream key).
    children: HashMap<(u32, u64), Vec<u64>>,
    local_ips: HashSet<IpAddr>,
    /// Counters.
    pub stats: LinkStats,
    /// Edges found since the last [`Linker::take_edges`].
    edges: Vec<Edge>,
}

impl Linker {
    /// An empty join buffer.
    pub fn new(cfg: LinkConfig) -> Self {
        Self {
            cfg: LinkConfig {
                max_waiting: cfg.max_waiting.max(1),
                ..cfg
            },
            nodes: HashMap::new(),
            next_id: 0,
            expiry: VecDeque::new(),
            clients: HashMap::new(),
            client_expiry: VecDeque::new(),
            servers: HashMap::new(),
            children: HashMap::new(),
            local_ips: HashSet::new(),
            stats: LinkStats::default(),
            edges: Vec::new(),
        }
    }

    /// Spans waiting now.
    pub fn waiting(&self) -> usize {
        self.nodes.len()
    }

    /// The service-graph edges found since the last call.
    pub fn take_edges(&mut self) -> Vec<Edge> {
        std::mem::take(&mut self.edges)
    }

    /// Takes one finished span (its [`SpanRecord::cause_conn`] is the rule-2 evidence) at
    /// monotonic time `now_ns`; spans whose trace is now known are appended to `out`.
    pub fn push(
        &mut self,
        res: Arc<ProcessResource>,
        span: SpanRecord,
        now_ns: u64,
        out: &mut Vec<(Arc<ProcessResource>, SpanRecord)>,
    ) {
        if let Some(t) = span.exchange.tuple
            && self.local_ips.len() < MAX_LOCAL_IPS
        {
            self.local_ips.insert(t.local.ip());
        }
        while self.nodes.len() >= self.cfg.max_waiting {
            let Some((_, oldest)) = self.expiry.pop_front() else {
                break;
            };
            if self.nodes.contains_key(&oldest) {
                self.stats.overflow += 1;
                self.force(oldest, out);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let deadline = now_ns.saturating_add(self.cfg.wait_ns);
        let key = PairKey::of(&span);
        let side = span.side();
        let cause = span.cause_conn;
        let mut node = Waiting {
            res,
            span,
            parent: Parent::None,
            decided: true,
            children: Vec::new(),
            key: None,
        };
        match side {
            Side::Server => self.server_arrives(id, &mut node, key),
            Side::Client => self.client_arrives(id, &mut node, key, cause, deadline),
        }
        self.nodes.insert(id, node);
        self.expiry.push_back((deadline, id));
        if let Parent::Waiting(p) = self.nodes[&id].parent
            && let Some(parent) = self.nodes.get_mut(&p)
        {
            parent.children.push(id);
        }
        if side == Side::Server {
            self.claim_children(id, out);
        }
        self.try_release(id, out);
        self.expire(now_ns, out);
    }

    /// Releases everything whose wait ended by `now_ns`.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<(Arc<ProcessResource>, SpanRecord)>) {
        while let Some(&(deadline, id)) = self.expiry.front() {
            if deadline > now_ns {
                break;
            }
            self.expiry.pop_front();
            if self.nodes.contains_key(&id) {
                self.force(id, out);
            }
        }
        while let Some(&(deadline, key)) = self.client_expiry.front() {
            if deadline > now_ns {
                break;
            }
            self.client_expiry.pop_front();
            if self
                .clients
                .get(&key)
                .is_some_and(|c| c.deadline == deadline)
                && let Some(c) = self.clients.remove(&key)
            {
                // Never paired: the server was not observed.
                self.edges.push(Edge {
                    client: Node::Process(c.res),
                    server: Node::Peer(key.server),
                    failed: c.error,
                    client_ns: Some(c.end - c.start),
                    server_ns: None,
                });
            }
        }
    }

    /// Releases everything (shutdown).
    pub fn flush(&mut self, out: &mut Vec<(Arc<ProcessResource>, SpanRecord)>) {
        self.expire(u64::MAX, out);
    }

    fn server_arrives(&mut self, id: u64, node: &mut Waiting, key: Option<PairKey>) {
        let s = &node.span;
        let propagated = s.exchange.context.propagated.as_deref().cloned();
        let fallback = propagated.map_or(Parent::None, Parent::Remote);
        let Some(key) = key else {
            // Not pairable: an edge only when the client cannot be on this host (a local
            // client would report the same request as a virtual edge of its own).
            if s.exchange
                .tuple
                .is_some_and(|t| !self.local_ips.contains(&t.remote.ip()))
            {
                self.edge_unobserved_client(node);
            }
            node.parent = fallback;
            return;
        };
        if let Some(c) = self.clients.get(&key)
            && same_netns(&c.res, &node.res)
            && nested(c.start, c.end, s.start_unix_ns, s.end_unix_ns)
            && let Some(c) = self.clients.remove(&key)
        {
            self.stats.paired += 1;
            self.edges.push(Edge {
                client: Node::Process(c.res.clone()),
                server: Node::Process(node.res.clone()),
                failed: c.error || s.status().0,
                client_ns: Some(c.end - c.start),
                server_ns: Some(s.duration_ns()),
            });
            node.parent = match c.at {
                Ok(waiting) => Parent::Waiting(waiting),
                Err(released) => Parent::Released(released),
            };
            return;
        }
        if self.local_ips.contains(&key.client.ip()) {
            // The client may be observed: wait for it.
            node.decided = false;
            node.parent = fallback;
            self.servers.insert(key, id);
        } else {
            self.edge_unobserved_client(node);
            node.parent = fallback;
        }
    }

    fn edge_unobserved_client(&mut self, node: &Waiting) {
        if let Some(t) = node.span.exchange.tuple {
            self.edges.push(Edge {
                client: Node::Peer(t.remote),
                server: Node::Process(node.res.clone()),
                failed: node.span.status().0,
                client_ns: None,
                server_ns: Some(node.span.duration_ns()),
            });
        }
    }

    fn client_arrives(
        &mut self,
        id: u64,
        node: &mut Waiting,
        key: Option<PairKey>,
        cause: Option<u64>,
        deadline: u64,
    ) {
        let pid = node.span.pid();
        match cause {
            Some(conn) => {
                node.decided = false;
                self.children.entry((pid, conn)).or_default().push(id);
            }
            None => self.decide_client(node, None),
        }
        let Some(key) = key else {
            if let Some(t) = node.span.exchange.tuple
                && !self.local_ips.contains(&t.remote.ip())
            {
                self.edges.push(Edge {
                    client: Node::Process(node.res.clone()),
                    server: Node::Peer(t.remote),
                    failed: node.span.status().0,
                    client_ns: Some(node.span.duration_ns()),
                    server_ns: None,
                });
            }
            return;
        };
        let s = &node.span;
        if let Some(&server_id) = self.servers.get(&key)
            && let Some(server) = self.nodes.get(&server_id)
            && same_netns(&node.res, &server.res)
            && nested(
                s.start_unix_ns,
                s.end_unix_ns,
                server.span.start_unix_ns,
                server.span.end_unix_ns,
            )
        {
            self.servers.remove(&key);
            self.stats.paired += 1;
            let server = self.nodes.get_mut(&server_id).expect("checked");
            server.parent = Parent::Waiting(id);
            server.decided = true;
            node.children.push(server_id);
            self.edges.push(Edge {
                client: Node::Process(node.res.clone()),
                server: Node::Process(server.res.clone()),
                failed: s.status().0 || server.span.status().0,
                client_ns: Some(s.duration_ns()),
                server_ns: Some(server.span.duration_ns()),
            });
            return;
        }
        if self.clients.len() >= self.cfg.max_waiting {
            return; // index full: this client is not found by its server (counted there)
        }
        node.key = Some(key);
        self.clients.insert(
            key,
            ClientEntry {
                res: node.res.clone(),
                start: s.start_unix_ns,
                end: s.end_unix_ns,
                error: s.status().0,
                at: Ok(id),
                deadline,
            },
        );
        self.client_expiry.push_back((deadline, key));
    }

    /// Decides a CLIENT span's parent when no serving request claims it: its propagated
    /// context (rule 3) or none.
    fn decide_client(&mut self, node: &mut Waiting, server_ctx: Option<&Propagated>) {
        node.decided = true;
        match node.span.exchange.context.propagated.as_deref() {
            Some(p) if server_ctx.is_none_or(|s| s.span_id != p.span_id) => {
                node.parent = Parent::Remote(p.clone());
                self.stats.client_linked += 1;
            }
            _ => self.stats.client_unlinked += 1,
        }
    }

    /// A SERVER span arrived: the CLIENT spans its thread sent while serving it become its
    /// children (rule 2), unless its connection is HTTP/2.
    fn claim_children(
        &mut self,
        server_id: u64,
        out: &mut Vec<(Arc<ProcessResource>, SpanRecord)>,
    ) {
        let (pid, conn, start, end, h2, server_ctx) = {
            let s = &self.nodes[&server_id].span;
            (
                s.pid(),
                s.exchange.conn_id,
                s.start_unix_ns,
                s.end_unix_ns,
                s.exchange.context.stream_id != 0,
                s.exchange.context.propagated.as_deref().cloned(),
            )
        };
        let Some(ids) = self.children.remove(&(pid, conn)) else {
            return;
        };
        let mut later = Vec::new();
        for cid in ids {
            let Some(mut child) = self.nodes.remove(&cid) else {
                continue;
            };
            let c_start = child.span.start_unix_ns;
            if c_start > end {
                later.push(cid); // caused by a later request on this connection
                self.nodes.insert(cid, child);
                continue;
            }
            let own = child.span.exchange.context.propagated.as_deref();
            let forwarded =
                own.is_some_and(|p| server_ctx.as_ref().is_some_and(|s| s.span_id == p.span_id));
            if h2 || c_start < start || (own.is_some() && !forwarded) {
                self.decide_client(&mut child, server_ctx.as_ref());
            } else {
                child.decided = true;
                child.parent = Parent::Waiting(server_id);
                self.stats.client_linked += 1;
                if let Some(s) = self.nodes.get_mut(&server_id) {
                    s.children.push(cid);
                }
            }
            self.nodes.insert(cid, child);
            self.try_release(cid, out);
        }
        if !later.is_empty() {
            self.children.insert((pid, conn), later);
        }
    }

    /// The wait of `id` ended: decide it and every undecided ancestor, then release.
    fn force(&mut self, id: u64, out: &mut Vec<(Arc<ProcessResource>, SpanRecord)>) {
        let mut top = id;
        // Walk up to the first undecided ancestor (or the root of the waiting chain).
        for _ in 0..64 {
            let Some(n) = self.nodes.get(&top) else {
                break;
            };
            if !n.decided {
                break;
            }
            match n.parent {
                Parent::Waiting(p) if self.nodes.contains_key(&p) => top = p,
                _ => break,
            }
        }
        if let Some(mut n) = self.nodes.remove(&top) {
            if !n.decided {
                match n.span.side() {
                    Side::Server => {
                        self.stats.expired_unpaired += 1;
                        if let Some(k) = PairKey::of(&n.span) {
                            self.servers.remove(&k);
                        }
                        self.edge_unobserved_client(&n);
                    }
                    Side::Client => self.decide_client(&mut n, None),
                }
            }
            if matches!(n.parent, Parent::Waiting(_)) {
                n.parent = Parent::None; // chain cut here
            }
            n.decided = true;
            self.nodes.insert(top, n);
            self.try_release(top, out);
        }
    }

    /// Releases `id` (and then its decided children) when its parent is known.
    fn try_release(&mut self, id: u64, out: &mut Vec<(Arc<ProcessResource>, SpanRecord)>) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let ready = self.nodes.get(&id).is_some_and(|n| {
                n.decided && !matches!(n.parent, Parent::Waiting(p) if self.nodes.contains_key(&p))
            });
            if !ready {
                continue;
            }
            let mut n = self.nodes.remove(&id).expect("checked");
            let pid = n.span.pid();
            apply(pid, &mut n.span.trace, &mut n.span.trace_state, &n.parent);
            let me = Released {
                pid,
                trace_id: n.span.trace.trace_id,
                span_id: n.span.trace.span_id,
                sampled: n.span.trace.sampled,
                trace_state: n.span.trace_state.clone(),
            };
            if let Some(k) = n.key
                && let Some(c) = self.clients.get_mut(&k)
                && c.at == Ok(id)
            {
                c.at = Err(me.clone());
            }
            for child in n.children.drain(..) {
                if let Some(c) = self.nodes.get_mut(&child) {
                    c.parent = Parent::Released(me.clone());
                    stack.push(child);
                }
            }
            out.push((n.res, n.span));
        }
    }
}

/// Sets a span's trace context from its decided parent.
fn apply(pid: u32, t: &mut TraceContext, state: &mut Option<Box<str>>, parent: &Parent) {
    match parent {
        Parent::None | Parent::Waiting(_) => {}
        Parent::Released(p) => {
            t.trace_id = p.trace_id;
            t.parent_span_id = Some(p.span_id);
            t.parent_remote = p.pid != pid;
            t.sampled = p.sampled;
            state.clone_from(&p.trace_state);
        }
        Parent::Remote(p) => {
            t.trace_id = p.trace_id;
            t.parent_span_id = Some(p.span_id);
            t.parent_remote = true;
            t.sampled = p.sampled.unwrap_or(true);
            state.clone_from(&p.trace_state);
        }
    }
}

/// The server interval lies within the client's, give or take [`NESTING_SLACK_NS`].
fn nested(c_start: u64, c_end: u64, s_start: u64, s_end: u64) -> bool {
    c_start <= s_start.saturating_add(NESTING_SLACK_NS)
        && s_end <= c_end.saturating_add(NESTING_SLACK_NS)
}

/// Both processes are in the same network namespace (unknown namespaces never match).
fn same_netns(a: &ProcessResource, b: &ProcessResource) -> bool {
    a.netns != 0 && a.netns == b.netns
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
