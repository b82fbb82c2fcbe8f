//! Tests of the `receiver.routes` and `receiver.sampling` sections.

use super::{assert_err, parse};

#[test]
fn routes_and_sampling_parse() {
    let c = parse(
        "receiver:\n  routes:\n    patterns:\n      shop: [\"/users/{id}\", \"/files/**\"]\n      \"*\": [\"/health\"]\n    max_children: 5\n  sampling:\n    sampling_percentage: 10\n    keep_slower_than_ms: 250\n",
    );
    assert_eq!(c.receiver.routes.patterns["shop"].len(), 2);
    assert_eq!(c.receiver.routes.max_children, 5);
    assert_eq!(c.receiver.routes.max_span_names, 100);
    assert_eq!(c.receiver.sampling.sampling_percentage, 10.0);
    assert_eq!(c.receiver.sampling.keep_slower_than_ms, Some(250.0));
    assert!(c.receiver.sampling.keep_errors);
    let c = parse("receiver:\n  routes:\n  sampling:\n");
    assert_eq!(c, super::Config::default());
}

#[test]
fn routes_and_sampling_are_validated() {
    let r = "receiver:\n  routes:\n";
    assert_err(
        &format!("{r}    max_children: 0\n"),
        "receiver.routes.max_children",
        "1..=1000",
    );
    assert_err(
        &format!("{r}    max_span_names: 0\n"),
        "receiver.routes.max_span_names",
        "1..=",
    );
    assert_err(
        &format!("{r}    max_services: 1000001\n"),
        "receiver.routes.max_services",
        "1..=",
    );
    assert_err(
        &format!("{r}    patterns:\n      shop: [\"users/{{id}}\"]\n"),
        "receiver.routes.patterns.shop[0]",
        "must start with /",
    );
    assert_err(
        &format!("{r}    patterns:\n      shop: [\"/a/**/b\"]\n"),
        "receiver.routes.patterns.shop[0]",
        "last segment",
    );
    assert_err(
        &format!("{r}    typo: 1\n"),
        "receiver.routes.typo",
        "unknown field",
    );
    let s = "receiver:\n  sampling:\n";
    assert_err(
        &format!("{s}    sampling_percentage: 101\n"),
        "receiver.sampling.sampling_percentage",
        "0..=100",
    );
    assert_err(
        &format!("{s}    sampling_percentage: -1\n"),
        "receiver.sampling.sampling_percentage",
        "0..=100",
    );
    assert_err(
        &format!("{s}    keep_slower_than_ms: 0\n"),
        "receiver.sampling.keep_slower_than_ms",
        "> 0",
    );
}
