//! Unit tests of trace context header parsing (W3C Trace Context and B3 examples).

use super::*;

fn collect(headers: &[(&str, &str)]) -> Result<Option<Propagated>, PropagationError> {
    let mut c = Collector::default();
    for (n, v) in headers {
        c.header(n.as_bytes(), v.as_bytes());
    }
    c.finish()
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn w3c_traceparent_and_tracestate() {
    let p = collect(&[("TraceParent", TP), ("tracestate", "rojo=00f067aa0ba902b7")])
        .unwrap()
        .unwrap();
    assert_eq!(
        p.trace_id,
        [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]
    );
    assert_eq!(p.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
    assert_eq!(p.sampled, Some(true));
    assert_eq!(p.trace_state.as_deref(), Some("rojo=00f067aa0ba902b7"));
    let unsampled = TP.replace("-01", "-00");
    assert_eq!(
        collect(&[("traceparent", &unsampled)])
            .unwrap()
            .unwrap()
            .sampled,
        Some(false)
    );
    // A later version may append fields.
    let v1 = format!("01{}-extra", &TP[2..]);
    assert!(collect(&[("traceparent", &v1)]).unwrap().is_some());
}

#[test]
fn malformed_traceparents_are_errors() {
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        assert_eq!(
            collect(&[("traceparent", bad)]),
            Err(PropagationError::TraceParent),
            "{bad:?}"
        );
    }
}

#[test]
fn b3_single_and_multi() {
    let p = collect(&[(
        "b3",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    )])
    .unwrap()
    .unwrap();
    assert_eq!(p.trace_id[0], 0x80);
    assert_eq!(p.span_id[7], 0xd1);
    assert_eq!(p.sampled, Some(true));
    // 64-bit trace id, no sampling state.
    let p = collect(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1")])
        .unwrap()
        .unwrap();
    assert_eq!(&p.trace_id[..8], &[0; 8]);
    assert_eq!(p.sampled, None);
    // Debug means sampled.
    let p = collect(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d")])
        .unwrap()
        .unwrap();
    assert_eq!(p.sampled, Some(true));
    // Bare sampling state: no context, no error.
    assert_eq!(collect(&[("b3", "0")]), Ok(None));
    let p = collect(&[
        ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("X-B3-SpanId", "e457b5a2e4d86bd1"),
        ("X-B3-Sampled", "0"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(p.sampled, Some(false));
    assert_eq!(p.span_id[0], 0xe4);
    for bad in [
        vec![("b3", "xyz-e457b5a2e4d86bd1")],
        vec![("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2")],
        vec![("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-zz-")],
        vec![("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")],
        vec![("x-b3-spanid", "e457b5a2e4d86bd1")],
        vec![("x-b3-sampled", "maybe")],
    ] {
        assert_eq!(collect(&bad), Err(PropagationError::B3), "{bad:?}");
    }
}

#[test]
fn traceparent_wins_and_nothing_is_none() {
    let p = collect(&[
        ("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ("traceparent", TP),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(p.trace_id[0], 0x4b);
    assert_eq!(collect(&[("host", "x"), ("accept", "*/*")]), Ok(None));
    // An oversized tracestate is dropped, the context kept.
    let big = "a=".to_string() + &"b".repeat(MAX_TRACESTATE_BYTES);
    let p = collect(&[("traceparent", TP), ("tracestate", &big)])
        .unwrap()
        .unwrap();
    assert_eq!(p.trace_state, None);
}
