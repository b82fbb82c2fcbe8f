//! Fuzz target: route derivation on arbitrary request paths.
//!
//! Stage: span (route derivation). Input: arbitrary bytes read as a script: each step takes a
//! control byte (service 0..4, method) and a length, then that many bytes (lossily UTF-8) as
//! the request target. A few declared patterns are configured so the matcher runs too.
//! Checks: no panic; a route starts with `/` (or is the overflow route); its length stays under
//! the documented bound; the span name is `{method} {route}` or the method alone on overflow;
//! services, span names and trie nodes stay within the configured bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::config::RoutesConfig;
use otel_ebpf_receiver::span::route::{
    MAX_DEPTH, ROUTE_OVERFLOW, RouteSource, RouteTable, heuristic::MAX_SEGMENT_BYTES,
};

const SERVICES: [&str; 4] = ["a", "b", "c", "d"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "_OTHER"];

fuzz_target!(|data: &[u8]| {
    let cfg = RoutesConfig {
        patterns: [
            ("a".to_string(), vec!["/users/{id}".to_string(), "/static/**".to_string()]),
            ("*".to_string(), vec!["/health".to_string(), "/v1/:x/*".to_string()]),
        ]
        .into(),
        max_children: 3,
        max_span_names: 8,
        max_services: 3,
    };
    let mut t = RouteTable::new(&cfg).expect("valid patterns");
    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (path, next) = tail.split_at(n);
        rest = next;
        let path = String::from_utf8_lossy(path);
        let service = SERVICES[(ctl & 3) as usize];
        let method = METHODS[((ctl >> 2) & 3) as usize];
        let Some(r) = t.route(service, method, &path) else {
            continue;
        };
        match r.source {
            RouteSource::Overflow => {
                assert_eq!(&*r.route, ROUTE_OVERFLOW);
                assert_eq!(&*r.span_name, method);
            }
            _ => {
                assert!(r.route.starts_with('/'), "{:?}", r.route);
                assert_eq!(*r.span_name, format!("{method} {}", r.route));
            }
        }
        if r.source == RouteSource::Derived {
            assert!(r.route.len() <= MAX_DEPTH * (MAX_SEGMENT_BYTES + 1) + 3);
        }
        let s = t.stats();
        assert!(s.services <= cfg.max_services);
        assert!(s.span_names <= cfg.max_span_names * cfg.max_services);
        assert!(s.nodes <= cfg.max_span_names * MAX_DEPTH * cfg.max_services);
    }
});
