//! Hot-path benchmark of the user-space pipeline, without the kernel: encoded ring
//! buffer records of keep-alive HTTP/1.1 exchanges, as nginx and a load generator produce
//! them (four records per request: client write, server read, server write, client read),
//! pass through decode → connection tracking and parsing → span → process resource →
//! metrics → OTLP request encoding. Prints ns per request (= 2 spans) for each stage group.
//! Run: `cargo bench -p otel-ebpf-receiver --bench hot_path` (release).

use otel_ebpf_common::{Direction, SockRole, Syscall};
use otel_ebpf_receiver::clock::Clock;
use otel_ebpf_receiver::config::Config;
use otel_ebpf_receiver::enrich::Enricher;
use otel_ebpf_receiver::events::{self, DataEvent, Event, Tuple};
use otel_ebpf_receiver::export::encode::TraceEncoder;
use otel_ebpf_receiver::metrics::HttpMetrics;
use otel_ebpf_receiver::pipeline::Processor;
use std::time::Instant;

/// The receiver binary's allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONNS: u64 = 50;
const REQUESTS: u64 = 200_000;

fn record(pid: u32, conn: u64, dir: Direction, role: SockRole, ts: u64, bytes: &[u8]) -> Vec<u8> {
    let client = role == SockRole::Client;
    let (lport, rport) = if client {
        (40000 + conn as u16, 8080)
    } else {
        (8080, 40000 + conn as u16)
    };
    events::encode(&Event::Data(DataEvent {
        pid,
        tid: pid,
        fd: 5,
        conn_id: conn * 2 + client as u64,
        ts_ns: ts,
        direction: dir,
        role,
        syscall: Syscall::Writev,
        total_len: bytes.len() as u64,
        tuple: Some(Tuple {
            local: format!("127.0.0.1:{lport}").parse().unwrap(),
            remote: format!("127.0.0.1:{rport}").parse().unwrap(),
        }),
        payload: bytes::Bytes::copy_from_slice(bytes),
        tls: None,
    }))
}

fn main() {
    let req = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: oha/1.16.0\r\nAccept: */*\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 11:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 13\r\nLast-Modified: Sat, 21 Nov 2026 10:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"1-d\"\r\nAccept-Ranges: bytes\r\n\r\nhello, bench\n";
    let me = std::process::id();
    let mut records = Vec::with_capacity(REQUESTS as usize * 4);
    for i in 0..REQUESTS {
        let c = i % CONNS;
        let t = 1_000_000 + i * 1000;
        records.push(record(me, c, Direction::Egress, SockRole::Client, t, req));
        records.push(record(
            me,
            c,
            Direction::Ingress,
            SockRole::Server,
            t + 10,
            req,
        ));
        records.push(record(
            me,
            c,
            Direction::Egress,
            SockRole::Server,
            t + 20,
            resp,
        ));
        records.push(record(
            me,
            c,
            Direction::Ingress,
            SockRole::Client,
            t + 30,
            resp,
        ));
    }
    let cfg = Config::builtin();
    let mut proc = Processor::new(&cfg, Clock::with_offset(0));
    let mut enricher = Enricher::new("/proc".into(), String::from("bench-host"));
    let mut metrics = HttpMetrics::default();
    let mut spans = Vec::new();
    let mut items = Vec::new();
    let mut encoder = TraceEncoder::default();
    let (mut t_parse, mut t_enrich, mut t_encode) = (0u128, 0u128, 0u128);
    let mut bytes_out = 0usize;
    let t0 = Instant::now();
    for chunk in records.chunks(4096) {
        let a = Instant::now();
        for r in chunk {
            let ev = events::decode(r).expect("decode");
            proc.on_event(ev, &mut spans);
        }
        let b = Instant::now();
        for span in spans.drain(..) {
            let res = enricher.resource(span.pid());
            metrics.record(&res, &span);
            items.push((res, span));
        }
        let c = Instant::now();
        bytes_out += encoder.request(&items).len();
        items.clear();
        let d = Instant::now();
        t_parse += (b - a).as_nanos();
        t_enrich += (c - b).as_nanos();
        t_encode += (d - c).as_nanos();
    }
    let total = t0.elapsed().as_nanos();
    let n = REQUESTS as f64;
    println!(
        "hot path, {REQUESTS} requests on {CONNS} connections (2 spans each): {:.0} ns/request \
         = decode+parse+span {:.0} + resource+metrics {:.0} + OTLP encode {:.0} \
         ({:.0} bytes/span)",
        total as f64 / n,
        t_parse as f64 / n,
        t_enrich as f64 / n,
        t_encode as f64 / n,
        bytes_out as f64 / (2.0 * n)
    );
}
