//! Golden tests: recorded ring buffer streams → expected spans.
//!
//! Each `golden/<name>.hex` holds raw records captured from the real probes with
//! `otel-ebpf-receiver dump-events --record FILE` (one record per line, hex). They are replayed
//! through [`Processor`] (decode → conn → protocol → span) and the spans, minus their random
//! ids, must equal `golden/<name>.spans.json`. `UPDATE_GOLDEN=1` rewrites the expectations.
//! Recordings made with kernel timing on carry its records too (`otel_ebpf.kernel.*` and
//! `otel_ebpf.tcp.*` span attributes).

use otel_ebpf_receiver::attr::{AttrValue, Attributes};
use otel_ebpf_receiver::clock::Clock;
use otel_ebpf_receiver::config::Config;
use otel_ebpf_receiver::events;
use otel_ebpf_receiver::pipeline::Processor;
use otel_ebpf_receiver::protocol::Side;
use otel_ebpf_receiver::span::SpanRecord;
use serde_json::{Value as Json, json};
use std::path::Path;

fn hex_decode(line: &str) -> Vec<u8> {
    (0..line.len() / 2)
        .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn span_json(s: &SpanRecord) -> Json {
    let mut a = Attributes::new();
    s.attributes(&mut a);
    let attrs: serde_json::Map<String, Json> = a
        .iter()
        .map(|(k, v)| {
            let v = match v {
                AttrValue::Str(x) => json!(x),
                AttrValue::Int(x) => json!(x),
                AttrValue::Bool(x) => json!(x),
                AttrValue::Double(x) => json!(x),
                AttrValue::StrArray(x) => json!(x),
                AttrValue::IntArray(x) => json!(x),
            };
            (k.to_string(), v)
        })
        .collect();
    // OTLP SpanKind numbers and status codes, as the recordings were reviewed with.
    let kind = match s.side() {
        Side::Server => 2,
        Side::Client => 3,
    };
    json!({
        "name": s.name(),
        "kind": kind,
        "start_time_unix_nano": s.start_unix_ns,
        "end_time_unix_nano": s.end_unix_ns,
        "status": if s.status().0 { 2 } else { 0 },
        "attributes": attrs,
    })
}

/// Replays one recording; returns the spans as JSON (sorted by start time, then kind).
fn replay(records: &str) -> Json {
    let mut p = Processor::new(
        &Config::default(),
        Clock::with_offset(1_700_000_000_000_000_000),
    );
    let mut out = Vec::new();
    let mut last_ts = 0;
    for line in records.lines().filter(|l| !l.trim().is_empty()) {
        let ev = events::decode(&hex_decode(line.trim())).expect("recorded record decodes");
        last_ts = last_ts.max(match &ev {
            events::Event::Data(d) => d.ts_ns,
            events::Event::Close { ts_ns, .. } | events::Event::ProcessExit { ts_ns, .. } => *ts_ns,
            events::Event::TcpState { ts_ns, .. }
            | events::Event::ProcessExec { ts_ns, .. }
            | events::Event::ProcessFork { ts_ns, .. } => *ts_ns,
            events::Event::Net(n) => n.ts_ns,
        });
        p.on_event(ev, &mut out);
    }
    // Anything still open is closed out as a timeout 60 s after the last record.
    p.expire(last_ts + 60_000_000_000, &mut out);
    let mut spans: Vec<Json> = out.iter().map(span_json).collect();
    spans.sort_by_key(|s| (s["start_time_unix_nano"].as_u64(), s["kind"].as_i64()));
    Json::Array(spans)
}

#[test]
fn golden_recordings_replay_to_expected_spans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("hex") {
            continue;
        }
        n += 1;
        let got = replay(&std::fs::read_to_string(&path).unwrap());
        let want_path = path.with_extension("spans.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(
                &want_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let want: Json =
            serde_json::from_str(&std::fs::read_to_string(&want_path).unwrap_or_else(|_| {
                panic!(
                    "{} missing: run with UPDATE_GOLDEN=1 and review it",
                    want_path.display()
                )
            }))
            .unwrap();
        assert_eq!(got, want, "{}", path.display());
    }
    assert!(
        n >= 2,
        "expected at least two recordings in {}",
        dir.display()
    );
}
