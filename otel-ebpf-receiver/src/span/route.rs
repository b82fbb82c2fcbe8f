//! Route derivation: a low-cardinality route for each HTTP request path, per service.
//!
//! Stage: span (called while a span and its metrics are built). Input: the service name, the
//! request method (as in `http.request.method`: a known method or `_OTHER`) and the request
//! path (`url.path`; a query or fragment is cut off, an absolute-form target reduced to its
//! path). Output: a [`Route`]: the route, the span name `{method} {route}` (both interned:
//! cloning is a reference count) and how the route was found ([`RouteSource`]).
//!
//! Three rules, in order:
//! 1. the service's declared patterns (`receiver.routes.patterns`, then those under `"*"`):
//!    the first match is the route, as written ([`RouteSource::Declared`]);
//! 2. the built-in heuristic ([`heuristic`]): identifier segments become `{id}`, `{date}`,
//!    `{email}`; paths deeper than [`MAX_DEPTH`] segments end in `**`;
//! 3. the per-service cardinality guard: the routes of a service form a trie of segments; a
//!    node that would get more than `max_children` distinct children collapses to one `*`
//!    child (its subtree is forgotten; later paths go through `*`), and a service that would
//!    get more than `max_span_names` distinct span names overflows: the route is
//!    [`ROUTE_OVERFLOW`] and the span name the method alone ([`RouteSource::Overflow`],
//!    counted in [`RouteStats::overflowed`]). Services past `max_services` overflow too.
//!
//! Where the route goes: a declared route is the application's own template, stated by whoever
//! configured the receiver, so it goes in `http.route`. A derived route (rules 2 and 3) is a
//! guess: semantic conventions reserve `http.route` for the template the server framework
//! matched and say the path must not stand in for it, so it goes in
//! `otel_ebpf.http.route` ([`otel_ebpf_semconv::attribute::OTEL_EBPF_HTTP_ROUTE`]) instead;
//! both feed the span name and the HTTP duration metrics (never the raw path).
//!
//! Memory (bounded, independent of traffic): at most `max_services` services; per service at
//! most `max_span_names` interned span names and route strings (each at most
//! `MAX_DEPTH × (MAX_SEGMENT_BYTES + 1) + 3` bytes plus the method) and at most
//! `max_span_names × MAX_DEPTH` trie nodes (a node is created only on the way to a route that
//! got a name; a collapse frees its subtree). With the defaults (1024 services, 100 names,
//! depth 10, 64-byte segments) that is under 150 KB per service in the worst case; typical
//! services take a few KB. [`RouteTable::stats`] counts what is held. Declared routes are not
//! counted against `max_span_names` (the config bounds them).
//!
//! Our own code: no crate derives routes from raw paths; the peers' idea (a per-segment check,
//! then a trie that collapses wide nodes, then a cap of names per service) is rebuilt here.

pub mod heuristic;
mod pattern;
#[cfg(test)]
mod tests;

use crate::config::RoutesConfig;
use crate::hash::{HashMap, HashMapExt, HashSet, HashSetExt};
use pattern::Pattern;
use std::borrow::Cow;
use std::sync::Arc;

/// Path segments beyond this depth are replaced by one `**` segment.
pub const MAX_DEPTH: usize = 10;
/// Route of an exchange whose service has too many span names (or too many services).
pub const ROUTE_OVERFLOW: &str = otel_ebpf_semconv::value::ROUTE_OVERFLOW;
/// The segment a collapsed trie node reports.
pub const COLLAPSED: &str = "*";

/// Checks a declared pattern's syntax (see `receiver.routes.patterns`); the error is one line.
pub fn check_pattern(text: &str) -> Result<(), String> {
    Pattern::parse(text).map(|_| ())
}

/// How a route was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteSource {
    /// A declared pattern matched: report it in `http.route`.
    Declared,
    /// Built by the heuristic and the cardinality guard: report it in `otel_ebpf.http.route`.
    Derived,
    /// The service has too many span names: `route` is [`ROUTE_OVERFLOW`], `span_name` the
    /// method alone. Report neither route attribute on the span; the metrics may carry
    /// `otel_ebpf.http.route = _OTHER`.
    Overflow,
}

/// The route of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route, e.g. `/users/{id}` (interned).
    pub route: Arc<str>,
    /// The span name, `{method} {route}`, or `{method}` on overflow (interned).
    pub span_name: Arc<str>,
    /// How the route was found.
    pub source: RouteSource,
}

/// What a [`RouteTable`] holds and has done (entries and events, not bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Services with derived-route state.
    pub services: usize,
    /// Distinct span names held, over all services.
    pub span_names: usize,
    /// Trie nodes held, over all services.
    pub nodes: usize,
    /// Trie nodes collapsed to `*` so far.
    pub collapsed: u64,
    /// Exchanges given [`ROUTE_OVERFLOW`] so far (a self-metric counter).
    pub overflowed: u64,
}

/// Per-service derived routes.
#[derive(Default)]
struct Service {
    trie: Node,
    nodes: usize,
    /// Span names handed out (`{method} {route}`), the interning set.
    names: HashSet<Arc<str>>,
    /// Routes handed out, the interning set (at most one per name).
    routes: HashSet<Arc<str>>,
}

#[derive(Default)]
struct Node {
    /// Distinct child segments (at most `max_children`; linear search, the bound is small).
    children: Vec<(Box<str>, Node)>,
    /// Set once collapsed: every segment at this position goes here.
    collapsed: Option<Box<Node>>,
}

impl Node {
    fn size(&self) -> usize {
        1 + self.children.iter().map(|(_, n)| n.size()).sum::<usize>()
            + self.collapsed.as_ref().map_or(0, |n| n.size())
    }
}

/// Route derivation state for every service; see the module docs. Not shared between
/// threads (`&mut self`): one per pipeline.
pub struct RouteTable {
    declared: HashMap<Box<str>, Vec<Pattern>>,
    any_service: Vec<Pattern>,
    /// Declared span names, interned (bounded by the config's patterns × methods seen).
    declared_names: HashSet<Arc<str>>,
    services: HashMap<Box<str>, Service>,
    /// Overflow span names (the methods), interned; at most [`MAX_OVERFLOW_METHODS`].
    overflow_names: HashSet<Arc<str>>,
    overflow_route: Arc<str>,
    max_children: usize,
    max_span_names: usize,
    max_services: usize,
    stats: RouteStats,
    /// Recent derived results that left the table unchanged, by hash of (service, method,
    /// path): the same inputs on the same table give the same route, so a hit skips the
    /// segment heuristics and the trie walk. Cleared whenever the table changes, and when it
    /// holds [`MEMO_ENTRIES`].
    memo: HashMap<u64, Memo>,
    memo_hasher: foldhash::fast::RandomState,
}

/// The inputs of a memoised route (compared in full on a hit) and the route.
struct Memo {
    service: Box<str>,
    method: Box<str>,
    path: Box<str>,
    route: Route,
}

/// Most memoised routes (≈ 100 bytes each plus the inputs).
const MEMO_ENTRIES: usize = 4096;

/// Most distinct methods whose overflow span name is interned (more are allocated per call).
const MAX_OVERFLOW_METHODS: usize = 32;

impl RouteTable {
    /// A table for `config`. Errors: a pattern that does not parse (message names the service
    /// and the pattern); config validation reports the same errors at start-up.
    pub fn new(config: &RoutesConfig) -> Result<Self, String> {
        let mut declared = HashMap::new();
        let mut any_service = Vec::new();
        for (service, patterns) in &config.patterns {
            let parsed = patterns
                .iter()
                .map(|p| Pattern::parse(p).map_err(|e| format!("service {service:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            if service == "*" {
                any_service = parsed;
            } else {
                declared.insert(service.as_str().into(), parsed);
            }
        }
        Ok(Self {
            declared,
            any_service,
            declared_names: HashSet::new(),
            services: HashMap::new(),
            overflow_names: HashSet::new(),
            overflow_route: ROUTE_OVERFLOW.into(),
            max_children: config.max_children.max(1),
            max_span_names: config.max_span_names.max(1),
            max_services: config.max_services.max(1),
            stats: RouteStats::default(),
            memo: HashMap::new(),
            memo_hasher: Default::default(),
        })
    }

    /// Counts of what is held and what happened.
    pub fn stats(&self) -> RouteStats {
        self.stats
    }

    /// The route of `method path` served or requested by `service`. `None` when `path` is not
    /// a path (`*` of `OPTIONS *`, the authority of `CONNECT`, empty): name the span by the
    /// method alone then.
    pub fn route(&mut self, service: &str, method: &str, path: &str) -> Option<Route> {
        let path = path_of(path)?;
        let key = {
            use std::hash::BuildHasher;
            self.memo_hasher.hash_one((service, method, path))
        };
        if let Some(m) = self.memo.get(&key)
            && *m.service == *service
            && *m.method == *method
            && *m.path == *path
        {
            return Some(m.route.clone());
        }
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let declared = self.declared.get(service).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(p) = declared
            .iter()
            .chain(&self.any_service)
            .find(|p| p.matches(&segs))
        {
            let route = p.route.clone();
            let span_name = intern(&mut self.declared_names, &span_name(method, &route));
            return Some(Route {
                route,
                span_name,
                source: RouteSource::Declared,
            });
        }
        let derived: Vec<Cow<'_, str>> = segs
            .iter()
            .take(MAX_DEPTH)
            .map(|s| heuristic::segment(s))
            .chain((segs.len() > MAX_DEPTH).then_some(Cow::Borrowed("**")))
            .collect();
        let (route, changed) = self.guard(service, method, &derived);
        if changed {
            self.memo.clear();
        } else if route.source == RouteSource::Derived {
            if self.memo.len() >= MEMO_ENTRIES {
                self.memo.clear();
            }
            self.memo.insert(
                key,
                Memo {
                    service: service.into(),
                    method: method.into(),
                    path: path.into(),
                    route: route.clone(),
                },
            );
        }
        Some(route)
    }

    /// Rule 3: the service's trie and its span-name budget. Also says whether the table
    /// changed in a way that can change another path's route (a service, node, name or
    /// collapse added; an overflow only counts).
    fn guard(&mut self, service: &str, method: &str, segs: &[Cow<'_, str>]) -> (Route, bool) {
        let mut changed = false;
        if !self.services.contains_key(service) {
            if self.services.len() >= self.max_services {
                return (self.overflow(method), false);
            }
            changed = true;
            self.services.insert(service.into(), Service::default());
            self.stats.services += 1;
        }
        let svc = self.services.get_mut(service).expect("inserted above");
        // Walk without creating nodes, collapsing nodes that are full; note where creation
        // would start.
        let mut route = String::with_capacity(64);
        let mut node = &mut svc.trie;
        let mut missing_from = None;
        for (depth, seg) in segs.iter().enumerate() {
            route.push('/');
            if node.collapsed.is_none()
                && !node.children.iter().any(|(s, _)| **s == **seg)
                && node.children.len() >= self.max_children
            {
                // Collapse: forget the children, keep one `*` child.
                let freed: usize = node.children.iter().map(|(_, n)| n.size()).sum();
                node.children = Vec::new();
                node.collapsed = Some(Box::default());
                svc.nodes = svc.nodes + 1 - freed;
                self.stats.nodes = self.stats.nodes + 1 - freed;
                self.stats.collapsed += 1;
                changed = true;
            }
            if node.collapsed.is_some() {
                route.push_str(COLLAPSED);
                node = node.collapsed.as_deref_mut().expect("checked");
                continue;
            }
            route.push_str(seg);
            match node.children.iter().position(|(s, _)| **s == **seg) {
                Some(i) => node = &mut node.children[i].1,
                None => {
                    missing_from = Some(depth);
                    for s in &segs[depth + 1..] {
                        route.push('/');
                        route.push_str(s);
                    }
                    break;
                }
            }
        }
        if route.is_empty() {
            route.push('/');
        }
        let name = span_name(method, &route);
        if let Some(name) = svc.names.get(name.as_str()) {
            let route = svc.routes.get(route.as_str()).cloned();
            let span_name = name.clone();
            if let Some(route) = route {
                let route = Route {
                    route,
                    span_name,
                    source: RouteSource::Derived,
                };
                return (route, changed);
            }
        }
        if svc.names.len() >= self.max_span_names {
            return (self.overflow(method), changed);
        }
        if let Some(from) = missing_from {
            let created = insert_path(&mut svc.trie, segs, from);
            svc.nodes += created;
            self.stats.nodes += created;
        }
        let route = intern(&mut svc.routes, &route);
        let span_name = intern(&mut svc.names, &name);
        self.stats.span_names += 1;
        let route = Route {
            route,
            span_name,
            source: RouteSource::Derived,
        };
        (route, true)
    }

    fn overflow(&mut self, method: &str) -> Route {
        self.stats.overflowed += 1;
        let span_name = if let Some(n) = self.overflow_names.get(method) {
            n.clone()
        } else if self.overflow_names.len() < MAX_OVERFLOW_METHODS {
            intern(&mut self.overflow_names, method)
        } else {
            method.into()
        };
        Route {
            route: self.overflow_route.clone(),
            span_name,
            source: RouteSource::Overflow,
        }
    }
}

/// Creates the nodes of `segs[from..]` below the node the walk stopped at (the walk is
/// repeated: collapsed nodes are followed, existing children reused). Returns nodes created.
fn insert_path(root: &mut Node, segs: &[Cow<'_, str>], from: usize) -> usize {
    let mut node = root;
    let mut created = 0;
    for (depth, seg) in segs.iter().enumerate() {
        if node.collapsed.is_some() {
            node = node.collapsed.as_deref_mut().expect("checked");
            continue;
        }
        let i = match node.children.iter().position(|(s, _)| **s == **seg) {
            Some(i) => i,
            None => {
                debug_assert!(depth >= from);
                node.children.push((Box::from(&**seg), Node::default()));
                created += 1;
                node.children.len() - 1
            }
        };
        node = &mut node.children[i].1;
    }
    created
}

fn span_name(method: &str, route: &str) -> String {
    let mut s = String::with_capacity(method.len() + 1 + route.len());
    s.push_str(method);
    s.push(' ');
    s.push_str(route);
    s
}

fn intern(set: &mut HashSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(a) = set.get(s) {
        return a.clone();
    }
    let a: Arc<str> = s.into();
    set.insert(a.clone());
    a
}

/// The path part of a request target: query and fragment cut, absolute-form reduced to its
/// path; `None` when there is no path (`*`, an authority, empty).
fn path_of(target: &str) -> Option<&str> {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let t = &target[..end];
    if t.starts_with('/') {
        return Some(t);
    }
    let rest = t.split_once("://")?.1;
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}
