//! Tests of route derivation: real-looking paths, declared patterns, the cardinality guard.

use super::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn table(cfg: RoutesConfig) -> RouteTable {
    RouteTable::new(&cfg).unwrap()
}

fn derived(path: &str) -> String {
    let mut t = table(RoutesConfig::default());
    let r = t.route("svc", "GET", path).unwrap();
    assert_eq!(r.source, RouteSource::Derived, "{path}");
    assert_eq!(&*r.span_name, format!("GET {}", r.route), "{path}");
    r.route.to_string()
}

#[test]
fn real_looking_paths() {
    let cases = [
        // REST ids and nested resources.
        ("/users/48213", "/users/{id}"),
        ("/users/48213/orders/9f1c2ab47e", "/users/{id}/orders/{id}"),
        (
            "/api/users/12/orders/7/items/3",
            "/api/users/{id}/orders/{id}/items/{id}",
        ),
        ("/users/me", "/users/me"),
        (
            "/customers/CUST-000123/invoices",
            "/customers/{id}/invoices",
        ),
        // UUIDs and hashes.
        (
            "/orders/550e8400-e29b-41d4-a716-446655440000",
            "/orders/{id}",
        ),
        (
            "/blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "/blobs/sha256/{id}",
        ),
        (
            "/commit/9fceb02d0ae598e95dc970b74767f19372d61af8",
            "/commit/{id}",
        ),
        ("/objects/5f8d0d55b54764421b7156c3", "/objects/{id}"),
        // Tokens.
        (
            "/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            "/reset/{id}",
        ),
        ("/share/dGhpcyBpcyBhIHRva2VuMTIz", "/share/{id}"),
        // Dates and e-mails.
        ("/reports/2024-01-05", "/reports/{date}"),
        ("/archive/2024/01/05", "/archive/{id}/{id}/{id}"),
        ("/logs/2024-01-05T10:20:30Z/tail", "/logs/{date}/tail"),
        ("/subscribers/jane.doe@example.com", "/subscribers/{email}"),
        // File names.
        ("/static/app.3f2a9c1b.js", "/static/app.{id}.js"),
        ("/images/123.png", "/images/{id}.png"),
        ("/favicon.ico", "/favicon.ico"),
        ("/index.html", "/index.html"),
        // Versioned APIs.
        ("/v1/users/42", "/v1/users/{id}"),
        ("/api/v2.1/items", "/api/v2.1/items"),
        (
            "/apis/apps/v1beta1/namespaces/default/deployments",
            "/apis/apps/v1beta1/namespaces/default/deployments",
        ),
        (
            "/v1/projects/p1/operations/42:cancel",
            "/v1/projects/p1/operations/{id}:cancel",
        ),
        // Root, trailing slashes, queries, absolute form.
        ("/", "/"),
        ("/health/", "/health"),
        ("//users//7", "/users/{id}"),
        ("/search?q=shoes&page=2", "/search"),
        ("http://example.com/users/7?x=1", "/users/{id}"),
        ("http://example.com", "/"),
        // Deeper than MAX_DEPTH.
        ("/a/b/c/d/e/f/g/h/i/j/k/l", "/a/b/c/d/e/f/g/h/i/j/**"),
    ];
    for (path, want) in cases {
        assert_eq!(derived(path), want, "{path}");
    }
}

#[test]
fn non_paths_have_no_route() {
    let mut t = table(RoutesConfig::default());
    for target in ["*", "example.com:443", ""] {
        assert_eq!(t.route("svc", "OPTIONS", target), None, "{target:?}");
    }
}

#[test]
fn declared_patterns_win_and_are_reported_as_written() {
    let mut cfg = RoutesConfig::default();
    cfg.patterns.insert(
        "shop".into(),
        vec![
            "/users/:userId".into(),
            "/files/**".into(),
            "/v1/{tenant}/*".into(),
        ],
    );
    cfg.patterns.insert("*".into(), vec!["/health".into()]);
    let mut t = table(cfg);
    let r = t.route("shop", "GET", "/users/alice").unwrap();
    assert_eq!(
        (&*r.route, &*r.span_name),
        ("/users/:userId", "GET /users/:userId")
    );
    assert_eq!(r.source, RouteSource::Declared);
    assert_eq!(
        &*t.route("shop", "PUT", "/files/a/b/c.txt").unwrap().route,
        "/files/**"
    );
    assert_eq!(
        &*t.route("shop", "GET", "/v1/acme/x").unwrap().route,
        "/v1/{tenant}/*"
    );
    // The "*" service's patterns apply to every service, after its own.
    let h = t.route("other", "GET", "/health").unwrap();
    assert_eq!((h.source, &*h.route), (RouteSource::Declared, "/health"));
    // Not declared for this service: the heuristic.
    let o = t.route("other", "GET", "/users/alice").unwrap();
    assert_eq!(
        (o.source, &*o.route),
        (RouteSource::Derived, "/users/alice")
    );
    // Declared routes take no derived state.
    assert_eq!(t.stats().span_names, 1);
    // Interned: the same Arc each time.
    let a = t.route("shop", "GET", "/users/bob").unwrap();
    assert!(Arc::ptr_eq(&a.span_name, &r.span_name));
    assert!(
        RouteTable::new(&RoutesConfig {
            patterns: [("x".to_string(), vec!["nope".to_string()])].into(),
            ..Default::default()
        })
        .is_err()
    );
}

#[test]
fn wide_nodes_collapse_to_a_wildcard() {
    let mut t = table(RoutesConfig {
        max_children: 3,
        ..Default::default()
    });
    // Slugs the heuristic keeps: the 4th distinct one collapses the node.
    for slug in ["red-shoes", "blue-hat", "green-coat"] {
        let r = t
            .route("blog", "GET", &format!("/posts/{slug}/comments"))
            .unwrap();
        assert_eq!(&*r.route, format!("/posts/{slug}/comments"));
    }
    let r = t
        .route("blog", "GET", "/posts/yellow-scarf/comments")
        .unwrap();
    assert_eq!(&*r.route, "/posts/*/comments");
    // From now on every slug, old or new, goes through the wildcard.
    assert_eq!(
        &*t.route("blog", "GET", "/posts/red-shoes/comments")
            .unwrap()
            .route,
        "/posts/*/comments"
    );
    assert_eq!(
        &*t.route("blog", "GET", "/posts/pink-sock/comments")
            .unwrap()
            .route,
        "/posts/*/comments"
    );
    assert_eq!(&*t.route("blog", "GET", "/posts").unwrap().route, "/posts");
    assert_eq!(t.stats().collapsed, 1);
    // Another service is not affected.
    assert_eq!(
        &*t.route("shop", "GET", "/posts/red-shoes/comments")
            .unwrap()
            .route,
        "/posts/red-shoes/comments"
    );
}

#[test]
fn span_names_overflow_per_service_and_are_counted() {
    let mut t = table(RoutesConfig {
        max_children: 1000,
        max_span_names: 5,
        ..Default::default()
    });
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
    let routes: Vec<Route> = words
        .iter()
        .map(|w| t.route("svc", "GET", &format!("/{w}")).unwrap())
        .collect();
    assert!(routes[..5].iter().all(|r| r.source == RouteSource::Derived));
    for r in &routes[5..] {
        assert_eq!(
            (r.source, &*r.route, &*r.span_name),
            (RouteSource::Overflow, "_OTHER", "GET")
        );
    }
    assert_eq!(t.stats().overflowed, 2);
    // Names already held keep working.
    assert_eq!(
        &*t.route("svc", "GET", "/alpha").unwrap().span_name,
        "GET /alpha"
    );
    // A new method on a known route is a new span name.
    assert_eq!(
        t.route("svc", "POST", "/alpha").unwrap().source,
        RouteSource::Overflow
    );
    assert_eq!(t.stats().span_names, 5);
}

#[test]
fn services_past_the_limit_overflow() {
    let mut t = table(RoutesConfig {
        max_services: 2,
        ..Default::default()
    });
    assert_eq!(
        t.route("a", "GET", "/x").unwrap().source,
        RouteSource::Derived
    );
    assert_eq!(
        t.route("b", "GET", "/x").unwrap().source,
        RouteSource::Derived
    );
    assert_eq!(
        t.route("c", "GET", "/x").unwrap().source,
        RouteSource::Overflow
    );
    assert_eq!(t.stats().services, 2);
}

/// 100,000 distinct random paths (random words the heuristic keeps, random ids, random
/// depth) on one service: names, routes and trie nodes stay within the configured bounds.
#[test]
fn guard_bounds_names_and_memory_under_random_paths() {
    let cfg = RoutesConfig::default();
    let mut t = table(cfg.clone());
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut seen = HashSet::new();
    let word = |rng: &mut StdRng| -> String {
        let n = rng.random_range(3..12);
        (0..n)
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect()
    };
    while seen.len() < 100_000 {
        let depth = rng.random_range(1..=14);
        let mut path = String::new();
        for _ in 0..depth {
            path.push('/');
            match rng.random_range(0..4) {
                0 => path.push_str(&rng.random::<u32>().to_string()),
                _ => path.push_str(&word(&mut rng)),
            }
        }
        if !seen.insert(path.clone()) {
            continue;
        }
        let method = ["GET", "POST", "PUT"][rng.random_range(0..3)];
        let r = t.route("svc", method, &path).unwrap();
        assert!(r.route.len() <= MAX_DEPTH * (heuristic::MAX_SEGMENT_BYTES + 1) + 3);
    }
    let s = t.stats();
    assert_eq!(s.services, 1);
    assert!(s.span_names <= cfg.max_span_names, "{s:?}");
    assert!(s.nodes <= cfg.max_span_names * MAX_DEPTH, "{s:?}");
    let svc = &t.services["svc"];
    assert_eq!(
        svc.nodes,
        svc.trie.size() - 1,
        "node count matches the trie"
    );
    assert_eq!(svc.nodes, s.nodes);
    assert!(svc.routes.len() <= svc.names.len());
    assert!(s.overflowed > 0 && s.collapsed > 0, "{s:?}");
    // The root collapsed at once: every first segment is now `*`.
    let r = t.route("svc", "GET", "/brandnewword").unwrap();
    assert!(
        r.route.starts_with("/*") || r.source == RouteSource::Overflow,
        "{r:?}"
    );
    // Many services: bounded by max_services.
    let mut t = table(RoutesConfig {
        max_services: 50,
        ..cfg
    });
    for i in 0..10_000 {
        t.route(&format!("svc{i}"), "GET", &format!("/x/{}", word(&mut rng)));
    }
    assert_eq!(t.stats().services, 50);
    assert!(t.stats().span_names <= 50 * 100);
}

/// `/users/1` … `/users/500` and 500 distinct slugs under `/posts/`: one route and one span
/// name each, whatever the order.
#[test]
fn five_hundred_users_give_one_route() {
    let mut t = table(RoutesConfig::default());
    let mut names = HashSet::new();
    for i in 1..=500 {
        names.insert(
            t.route("api", "GET", &format!("/users/{i}"))
                .unwrap()
                .span_name,
        );
        let slug = format!(
            "post-about-{}",
            ["cats", "dogs", "owls", "bees"][i % 4].repeat(i % 7 + 1)
        );
        names.insert(
            t.route("api", "GET", &format!("/posts/{slug}"))
                .unwrap()
                .span_name,
        );
    }
    let mut names: Vec<&str> = names.iter().map(|n| &**n).collect();
    names.sort_unstable();
    // The slugs repeat 28 ways; the first 10 kept their names before the node collapsed.
    assert!(
        names.contains(&"GET /users/{id}") && names.contains(&"GET /posts/*"),
        "{names:?}"
    );
    assert_eq!(names.len(), 1 + 10 + 1, "{names:?}");
    assert_eq!(t.stats().collapsed, 1);
}

/// Arbitrary bytes as targets (the fuzz target's checks, on 20,000 seeded random inputs so CI
/// runs them): no panic, routes start with `/`, bounded length, bounded state.
#[test]
fn arbitrary_targets_keep_the_invariants() {
    let cfg = RoutesConfig {
        max_children: 3,
        max_span_names: 8,
        max_services: 3,
        ..Default::default()
    };
    let mut t = table(cfg.clone());
    let mut rng = StdRng::seed_from_u64(0xf022);
    let alphabet = b"/ab1F-._:@%?#{}*\\\x00\xff9zZ";
    for _ in 0..20_000 {
        let n = rng.random_range(0..120);
        let bytes: Vec<u8> = (0..n)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let path = String::from_utf8_lossy(&bytes);
        let service = ["a", "b", "c", "d"][rng.random_range(0..4)];
        let Some(r) = t.route(service, "GET", &path) else {
            continue;
        };
        if r.source == RouteSource::Overflow {
            assert_eq!((&*r.route, &*r.span_name), (ROUTE_OVERFLOW, "GET"));
        } else {
            assert!(r.route.starts_with('/'), "{path:?} → {:?}", r.route);
            assert!(r.route.len() <= MAX_DEPTH * (heuristic::MAX_SEGMENT_BYTES + 1) + 3);
            assert_eq!(*r.span_name, format!("GET {}", r.route));
        }
    }
    let s = t.stats();
    assert!(
        s.services <= 3 && s.span_names <= 3 * 8 && s.nodes <= 3 * 8 * MAX_DEPTH,
        "{s:?}"
    );
}

#[test]
fn memoised_routes_equal_fresh_derivations() {
    // Few children per node and few names: collapses and overflows happen between repeats
    // of the same path, so a stale memo entry would show as a different route.
    let mut t = table(RoutesConfig {
        max_children: 3,
        max_span_names: 12,
        ..Default::default()
    });
    let segs = [
        "posts",
        "users",
        "red-shoes",
        "blue-hat",
        "green-coat",
        "42",
        "a",
        "b",
    ];
    let mut rng = StdRng::seed_from_u64(11);
    let mut memo_hits = 0;
    for i in 0..4000 {
        let depth = rng.random_range(1..4);
        let path: String = (0..depth)
            .map(|_| format!("/{}", segs[rng.random_range(0..segs.len())]))
            .collect();
        let svc = ["blog", "shop", "api"][i % 3];
        let method = ["GET", "POST"][rng.random_range(0..2)];
        let first = t.route(svc, method, &path);
        let key = {
            use std::hash::BuildHasher;
            t.memo_hasher.hash_one((svc, method, path.as_str()))
        };
        memo_hits += usize::from(t.memo.contains_key(&key));
        let again = t.route(svc, method, &path);
        t.memo.clear();
        let fresh = t.route(svc, method, &path);
        assert_eq!(first, again, "{svc} {method} {path}");
        assert_eq!(again, fresh, "{svc} {method} {path}");
    }
    assert!(memo_hits > 1000, "memo used {memo_hits} times");
    let s = t.stats();
    assert!(s.collapsed > 0 && s.overflowed > 0, "{s:?}");
}
