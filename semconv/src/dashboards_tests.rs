//! Every Grafana dashboard in `deploy/dashboards/` queries only metrics the receiver emits.
//!
//! Reads each dashboard's JSON, takes every PromQL expression (panel targets and template
//! variable queries), parses it with a PromQL parser library and collects the metric names of
//! its selectors and the label names it matches or groups by. Each metric name must be one of
//! [`crate::prometheus::emitted_series`] (the semconv names translated to
//! Prometheus naming) and each label a translated semconv attribute or a label Prometheus,
//! the Collector's exporter or the receiver's endpoint adds. A rename in `semconv/` that a
//! dashboard does not follow fails here instead of blanking a panel.

use crate::{anomaly, attribute as a, collector, kernel, prometheus, service_graph as sg};
use promql_parser::parser::{self, Expr};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn dashboards() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every PromQL string of a dashboard: `targets[].expr` of every panel (rows' nested panels
/// too) and the `label_values(...)` / query of every query variable.
fn expressions(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Array(targets)) = m.get("targets") {
                for t in targets {
                    out.push(t["expr"].as_str().expect("target without expr").to_string());
                }
            }
            if m.get("type").and_then(|t| t.as_str()) == Some("query") {
                let q = m["query"]["query"].as_str().expect("variable query");
                out.push(q.to_string());
            }
            for (k, child) in m {
                if k != "targets" {
                    expressions(child, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|c| expressions(c, out)),
        _ => {}
    }
}

/// Grafana's own syntax made PromQL: `label_values(sel, label)` → `sel` (and `label` is
/// checked), `$__rate_interval` and friends → a duration.
fn to_promql(expr: &str, labels: &mut BTreeSet<String>) -> String {
    let mut e = expr.trim().to_string();
    if let Some(inner) = e
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (sel, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        labels.insert(label.trim().to_string());
        e = sel.trim().to_string();
    }
    for v in ["$__rate_interval", "$__interval", "$__range"] {
        e = e.replace(v, "5m");
    }
    e
}

fn walk(e: &Expr, metrics: &mut BTreeSet<String>, labels: &mut BTreeSet<String>) {
    let mut selector = |vs: &parser::VectorSelector| {
        let name = vs.name.clone().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        });
        metrics.insert(name.expect("selector without a metric name"));
        for m in vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
        {
            if m.name != "__name__" {
                labels.insert(m.name.clone());
            }
        }
    };
    match e {
        Expr::VectorSelector(vs) => selector(vs),
        Expr::MatrixSelector(ms) => selector(&ms.vs),
        Expr::Aggregate(ag) => {
            if let Some(m) = &ag.modifier {
                labels.extend(m.labels().labels.iter().cloned());
            }
            if let Some(p) = &ag.param {
                walk(p, metrics, labels);
            }
            walk(&ag.expr, metrics, labels);
        }
        Expr::Unary(u) => walk(&u.expr, metrics, labels),
        Expr::Binary(b) => {
            walk(&b.lhs, metrics, labels);
            walk(&b.rhs, metrics, labels);
        }
        Expr::Paren(p) => walk(&p.expr, metrics, labels),
        Expr::Subquery(s) => walk(&s.expr, metrics, labels),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, metrics, labels)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => panic!("unexpected extension node"),
    }
}

/// Label names a dashboard may use: semconv attributes as Prometheus spells them, plus the
/// labels Prometheus (`job` = `service.name`, `instance`, `le`), the service graph, the
/// Collector's self-telemetry and the receiver's own endpoint add.
fn known_labels() -> BTreeSet<String> {
    let attrs = [
        a::HTTP_REQUEST_METHOD,
        a::HTTP_RESPONSE_STATUS_CODE,
        a::HTTP_ROUTE,
        a::OTEL_EBPF_HTTP_ROUTE,
        a::ERROR_TYPE,
        a::SERVER_ADDRESS,
        a::SERVER_PORT,
        a::URL_SCHEME,
        a::NETWORK_PROTOCOL_NAME,
        a::NETWORK_PROTOCOL_VERSION,
        a::NETWORK_PEER_ADDRESS,
        a::RPC_SYSTEM_NAME,
        a::RPC_METHOD,
        a::RPC_RESPONSE_STATUS_CODE,
        kernel::attribute::LAYER,
        kernel::attribute::DROP_REASON,
        kernel::attribute::RESET_REASON,
        kernel::attribute::ROLE,
        kernel::attribute::STATE,
        kernel::attribute::IO_DIRECTION,
        anomaly::TYPE,
        sg::CLIENT,
        sg::SERVER,
        sg::CONNECTION_TYPE,
        collector::LABEL_RECEIVER,
        collector::LABEL_EXPORTER,
        collector::LABEL_TRANSPORT,
    ];
    let own_endpoint = ["counter", "reason", "file", "point", "hook"];
    let prometheus_added = ["job", "instance", "le"];
    attrs
        .iter()
        .map(|n| prometheus::sanitize(n))
        .chain(
            own_endpoint
                .iter()
                .chain(&prometheus_added)
                .map(|s| s.to_string()),
        )
        .collect()
}

#[test]
fn every_dashboard_metric_is_emitted() {
    let emitted: BTreeSet<String> = prometheus::emitted_series().into_iter().collect();
    let known_labels = known_labels();
    let files = dashboards();
    assert!(files.len() >= 5, "dashboards: {files:?}");
    let mut used_everywhere = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            json["uid"].is_string() && json["title"].is_string(),
            "{}",
            file.display()
        );
        let mut exprs = Vec::new();
        expressions(&json, &mut exprs);
        assert!(
            exprs.len() >= 5,
            "{}: {} queries",
            file.display(),
            exprs.len()
        );
        let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
        for expr in &exprs {
            let promql = to_promql(expr, &mut labels);
            let ast = parser::parse(&promql)
                .unwrap_or_else(|e| panic!("{}: {expr:?}: {e}", file.display()));
            walk(&ast, &mut metrics, &mut labels);
        }
        let unknown: Vec<_> = metrics.difference(&emitted).collect();
        assert!(
            unknown.is_empty(),
            "{}: metrics not emitted: {unknown:?}",
            file.display()
        );
        let unknown: Vec<_> = labels.difference(&known_labels).collect();
        assert!(
            unknown.is_empty(),
            "{}: labels not emitted: {unknown:?}",
            file.display()
        );
        used_everywhere.extend(metrics);
    }
    // The dashboards cover the service graph, the layer heatmaps and the Collector names.
    for must in [
        "traces_service_graph_request_total",
        "otel_ebpf_kernel_send_duration_seconds_bucket",
        "otelcol_exporter_queue_size",
        "http_server_request_duration_seconds_bucket",
    ] {
        assert!(used_everywhere.contains(must), "no dashboard uses {must}");
    }
}

#[test]
fn a_renamed_metric_is_caught() {
    let emitted: BTreeSet<String> = prometheus::emitted_series().into_iter().collect();
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let q = to_promql(
        "sum by (job) (rate(http_server_request_duration_seconds_count{job=~\"$service\"}[$__rate_interval])) / on() group_left sum(rate(http_server_duration_seconds_count[5m]))",
        &mut labels,
    );
    walk(&parser::parse(&q).unwrap(), &mut metrics, &mut labels);
    let unknown: Vec<_> = metrics.difference(&emitted).cloned().collect();
    assert_eq!(unknown, ["http_server_duration_seconds_count"]);
    assert!(labels.contains("job"));
}
