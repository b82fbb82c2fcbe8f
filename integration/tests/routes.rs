//! Routes end to end, as root: requests to `/users/1` … `/users/500` on a real server give one
//! route, one span name and one HTTP duration series (never one per raw path).

use otel_ebpf_integration::metrics::{attr_is, hist_of_pid, wait_for};
use otel_ebpf_integration::{OtlpSink, Receiver, free_port, python_http_server, serial, terminate};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn five_hundred_user_ids_are_one_route_and_one_series() {
    let _g = serial();
    let sink = OtlpSink::start();
    let port = free_port();
    let mut py = python_http_server(port);
    let mut rx = Receiver::start(
        &format!("  filters:\n    include_ports: [{port}]"),
        Some(&sink.endpoint()),
        &[],
    );
    // One curl, 500 URLs (curl's [1-500] globbing), one keep-alive connection.
    let st = Command::new("curl")
        .args(["-s", "-o", "/dev/null"])
        .arg(format!("http://127.0.0.1:{port}/users/[1-500]"))
        .status()
        .unwrap();
    assert!(st.success());
    let server = |s: &otel_ebpf_integration::Span| {
        s.is_server() && s.attr("server.port") == Some(&port.to_string())
    };
    let spans = sink.wait_spans(1000, WAIT, |s| {
        s.attr("server.port") == Some(&port.to_string())
    });
    assert_eq!(spans.len(), 1000, "500 client + 500 server spans");
    for s in spans.iter().filter(|s| server(s)) {
        assert_eq!(s.name, "GET /users/{id}", "{s:?}");
        assert_eq!(s.attr("otel_ebpf.http.route"), Some("/users/{id}"));
        assert!(s.attr("url.path").unwrap().starts_with("/users/"));
    }
    // The server's HTTP duration metric: one series for the route, counting every request.
    let pid = py.id();
    let route_points = || {
        hist_of_pid(&sink, "http.server.request.duration", pid)
            .into_iter()
            .filter(|p| attr_is(&p.attributes, "otel_ebpf.http.route", "/users/{id}"))
            .collect::<Vec<_>>()
    };
    wait_for("500 requests in one series", WAIT, || {
        route_points().iter().map(|p| p.count).sum::<u64>() == 500
    });
    let all = hist_of_pid(&sink, "http.server.request.duration", pid);
    assert_eq!(all.len(), 1, "one series in all: {all:#?}");
    assert_eq!(route_points()[0].count, 500);
    terminate(&mut py);
    rx.stop();
}
