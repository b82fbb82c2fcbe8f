//! Tests of the network-namespace harness (`otel_ebpf_integration::netns`), as root: a veth
//! pair between two fresh namespaces carries real HTTP between curl and the Python server,
//! `tbf` slows an upload, nftables drops are survived (OUTPUT) or
//! make the peer retransmit (INPUT), a closed port answers RST.
//! Only the pair's own 10.231.X.0/30 addresses are used. Each test prints what it measured.

use otel_ebpf_integration::netns::{
    NetPair, Side, cmd_in, curl_in, in_netns, netstat_counter, spawn_http_server,
};
use otel_ebpf_integration::serial;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

const PORT: u16 = 8080;

/// curl's `-w` fields `code time_total` parsed from stdout (one line per URL).
fn codes_and_times(out: &std::process::Output) -> Vec<(u16, f64)> {
    assert!(
        out.status.success(),
        "curl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// curl arguments `-sS -w FORMAT` then `-o /dev/null URL` for each URL (one transfer each,
/// on one keep-alive connection).
fn curl_args<'a>(format: &'a str, urls: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["-sS", "--max-time", "10", "-w", format];
    for u in urls {
        a.extend(["-o", "/dev/null", u]);
    }
    a
}

/// POSTs `len` bytes to /echo from the client namespace; returns curl's total time (s).
fn post_echo(pair: &NetPair, len: usize) -> f64 {
    let url = format!("http://{}:{PORT}/echo", pair.server_ip());
    let mut child = cmd_in(pair.client_ns(), "curl")
        .args([
            "-sS",
            "-H",
            "Expect:",
            "--data-binary",
            "@-",
            "--max-time",
            "10",
        ])
        .args(["-w", "\n%{http_code} %{time_total}\n", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&vec![b'u'; len])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        body.lines().next(),
        Some(len.to_string().as_str()),
        "{body}"
    );
    let r = codes_and_times(&out);
    assert_eq!(r.len(), 1, "{body}");
    assert_eq!(r[0].0, 200);
    r[0].1
}

#[test]
fn pair_carries_http_and_is_deleted_on_drop() {
    let _g = serial();
    let pair = NetPair::new("nh1");
    let (c, s) = (pair.client_ns().to_string(), pair.server_ns().to_string());
    let links = otel_ebpf_integration::netns::run_in(&c, &["ip", "-br", "addr"]);
    assert!(links.contains(&pair.client_ip().to_string()), "{links}");
    {
        let _srv = spawn_http_server(&s, pair.server_ip(), PORT, 50);
        let url = format!("http://{}:{PORT}/sleep", pair.server_ip());
        // Two requests on one keep-alive connection.
        let out = curl_in(
            &c,
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{time_total} %{num_connects}\n",
            ]
            .into_iter()
            .chain([url.as_str(), url.as_str()])
            .collect::<Vec<_>>(),
        );
        let r = codes_and_times(&out);
        eprintln!("GET /sleep (50 ms) x2: {r:?}");
        assert_eq!(r.len(), 2);
        for (code, t) in &r {
            assert_eq!(*code, 200);
            assert!(*t >= 0.050, "took {t} s < 50 ms");
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let connects: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert_eq!(connects, ["1", "0"], "second request reuses the connection");
    }
    drop(pair);
    let list = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!list.contains(&c) && !list.contains(&s), "{list}");
    assert!(!std::path::Path::new("/run/netns").join(&c).exists());
    assert!(!std::path::Path::new("/run/netns").join(&s).exists());
}

#[test]
fn tbf_on_client_slows_upload() {
    let _g = serial();
    let pair = NetPair::new("nh2");
    let _srv = spawn_http_server(pair.server_ns(), pair.server_ip(), PORT, 0);
    let len = 200_000;
    let fast = post_echo(&pair, len);
    pair.rate_limit(Side::Client, 1000, 16_000, 200);
    let qdisc = otel_ebpf_integration::netns::run_in(
        pair.client_ns(),
        &["tc", "qdisc", "show", "dev", pair.client_dev()],
    );
    assert!(qdisc.contains("tbf"), "{qdisc}");
    let slow = post_echo(&pair, len);
    eprintln!("POST 200 KB: {fast:.3} s unshaped, {slow:.3} s with tbf 1 Mbit/s; {qdisc}");
    assert!(slow >= 1.2, "shaped upload took {slow} s");
    assert!(fast < 0.3, "unshaped upload took {fast} s");
}

/// Downloads /bytes/2000000 three times per curl run (one keep-alive connection) until
/// `which` side's random-drop rules dropped something (at most 5 runs); returns the
/// per-transfer (code, seconds).
fn download_until_dropped(pair: &NetPair, which: Side) -> Vec<(u16, f64)> {
    let url = format!("http://{}:{PORT}/bytes/2000000", pair.server_ip());
    let mut all = Vec::new();
    for _ in 0..5 {
        let args = curl_args(
            "%{http_code} %{time_total} %{size_download}\n",
            &[&url, &url, &url],
        );
        let out = curl_in(pair.client_ns(), &args);
        let r = codes_and_times(&out);
        let sizes: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|(code, _)| *code == 200), "{r:?}");
        assert_eq!(sizes, ["2000000"; 3]);
        all.extend(r);
        if pair.dropped_packets(which) > 0 {
            return all;
        }
    }
    panic!("nftables dropped nothing in 15 downloads");
}

#[test]
fn output_drops_on_server_are_survived() {
    let _g = serial();
    let pair = NetPair::new("nh3");
    let _srv = spawn_http_server(pair.server_ns(), pair.server_ip(), PORT, 0);
    pair.drop_random(Side::Server, 5, PORT);
    let before = netstat_counter(pair.server_ns(), "TcpRetransSegs");
    let r = download_until_dropped(&pair, Side::Server);
    let after = netstat_counter(pair.server_ns(), "TcpRetransSegs");
    // OUTPUT drops are local transmit errors: TCP sends the segment again as a first
    // transmission, so TcpRetransSegs may or may not move (see NetPair::drop_random).
    eprintln!(
        "GET 2 MB with 5% OUTPUT drops at the server: {r:?}; nft dropped {}; \
         TcpRetransSegs {before} -> {after}",
        pair.dropped_packets(Side::Server)
    );
    assert!(pair.dropped_packets(Side::Server) > 0);
}

#[test]
fn input_drops_on_client_cause_server_retransmissions() {
    let _g = serial();
    let pair = NetPair::new("nh5");
    let _srv = spawn_http_server(pair.server_ns(), pair.server_ip(), PORT, 0);
    pair.drop_random_input(Side::Client, 5, PORT);
    let before = netstat_counter(pair.server_ns(), "TcpRetransSegs");
    let r = download_until_dropped(&pair, Side::Client);
    let after = netstat_counter(pair.server_ns(), "TcpRetransSegs");
    let dropped = pair.dropped_packets(Side::Client);
    eprintln!(
        "GET 2 MB with 5% INPUT drops at the client: {r:?}; nft dropped {dropped}; \
         server TcpRetransSegs {before} -> {after}"
    );
    assert!(after > before, "server TcpRetransSegs did not increase");
}

#[test]
fn closed_port_is_refused_with_rst() {
    let _g = serial();
    let pair = NetPair::new("nh4");
    let before = netstat_counter(pair.server_ns(), "TcpOutRsts");
    let addr = SocketAddr::from((pair.server_ip(), 9));
    let err = in_netns(pair.client_ns(), || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err()
    });
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let out = curl_in(
        pair.client_ns(),
        &["-sS", "--max-time", "2", &format!("http://{addr}/")],
    );
    let curl_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(7), "{curl_err}");
    let after = netstat_counter(pair.server_ns(), "TcpOutRsts");
    eprintln!(
        "connect {addr}: {err}; curl: {}; TcpOutRsts {before} -> {after}",
        curl_err.trim()
    );
    assert_eq!(after, before + 2, "one RST per refused connect");
}
