//! Resilience: a backend that is down at first, one that stays down with a tiny queue, one
//! that keeps failing while spans keep coming, and one that never answers at shutdown.
//! Memory stays bounded: `pending` never exceeds `queue_size + max_batch_size`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::support::*;
use crate::export::{Exporter, Protocol};
use crate::telemetry::SelfMetrics;

fn endpoint(protocol: Protocol, port: u16) -> String {
    match protocol {
        Protocol::Grpc => format!("http://127.0.0.1:{port}"),
        Protocol::HttpProtobuf => format!("http://127.0.0.1:{port}/v1/traces"),
    }
}

async fn down_then_up(protocol: Protocol) {
    let port = free_port();
    let mut s = settings(Some(signal(endpoint(protocol, port), protocol)));
    s.max_batch_size = 3;
    // Retries are at least 150 ms apart: ample time to start the backend after the first failure.
    s.retry.initial_backoff = Duration::from_millis(300);
    s.retry.max_backoff = Duration::from_millis(300);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    for i in 0..3 {
        assert!(exp.submit(resource(9, "late"), span(&i.to_string())));
    }
    wait_until("the first failed attempt", || {
        m.export_failures.load(Ordering::SeqCst) == 1
    })
    .await;
    let backend = match protocol {
        Protocol::Grpc => grpc_backend(port, false).await,
        Protocol::HttpProtobuf => http_backend(port, false).await,
    };
    wait_until("spans accepted", || {
        m.spans_exported.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(counts(&m), (3, 0, 1));
    assert_eq!(backend.collector.span_count(), 3);
    assert_eq!(backend.collector.state().calls, 1);
    assert_eq!(exp.pending(), 0);
    exp.shutdown().await;
}

#[tokio::test]
async fn grpc_backend_down_at_first_gets_the_spans_after_a_retry() {
    down_then_up(Protocol::Grpc).await;
}

#[tokio::test]
async fn http_backend_down_at_first_gets_the_spans_after_a_retry() {
    down_then_up(Protocol::HttpProtobuf).await;
}

/// Nothing listens; the queue holds 4 spans, batches of 2, one attempt per batch.
async fn stays_down(protocol: Protocol) {
    let mut s = settings(Some(signal(endpoint(protocol, free_port()), protocol)));
    s.queue_size = 4;
    s.max_batch_size = 2;
    s.retry.max_elapsed = Duration::ZERO;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    let r = resource(1, "a");
    // The export task has not run yet (current-thread runtime): exactly 4 fit.
    let accepted = (0..100_000)
        .filter(|i| exp.submit(r.clone(), span(&i.to_string())))
        .count();
    assert_eq!(accepted, 4);
    assert_eq!(exp.pending(), 4);
    assert_eq!(counts(&m), (0, 99_996, 0));
    exp.shutdown().await;
    // Two batches of 2, one failed attempt each, all dropped.
    assert_eq!(counts(&m), (0, 100_000, 2));
}

#[tokio::test]
async fn grpc_backend_that_stays_down_drops_exactly_the_overflow_and_the_failed_batches() {
    stays_down(Protocol::Grpc).await;
}

#[tokio::test]
async fn http_backend_that_stays_down_drops_exactly_the_overflow_and_the_failed_batches() {
    stays_down(Protocol::HttpProtobuf).await;
}

#[tokio::test]
async fn spans_keep_queuing_up_to_the_bound_while_a_batch_is_retried() {
    let backend = grpc_backend(0, false).await;
    backend.collector.state().failures.extend([14; 1000]); // UNAVAILABLE, always
    let mut s = settings(Some(signal(
        endpoint(Protocol::Grpc, backend.addr.port()),
        Protocol::Grpc,
    )));
    s.queue_size = 4;
    s.max_batch_size = 2;
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    let r = resource(1, "a");
    let first: Vec<bool> = (0..6)
        .map(|i| exp.submit(r.clone(), span(&i.to_string())))
        .collect();
    assert_eq!(first, [true, true, true, true, false, false]);
    // The task took one batch of 2 and is retrying it; 2 spans wait in the queue.
    wait_until("a first attempt", || backend.collector.state().calls >= 1).await;
    let second: Vec<bool> = (0..6)
        .map(|i| exp.submit(r.clone(), span(&i.to_string())))
        .collect();
    assert_eq!(second, [true, true, false, false, false, false]);
    assert_eq!(exp.pending(), 6); // queue_size + max_batch_size
    // From now on the backend answers INVALID_ARGUMENT: every batch fails permanently.
    backend.collector.state().failures = [3; 1000].into();
    exp.shutdown().await;
    let calls = backend.collector.state().calls;
    assert_eq!(counts(&m), (0, 12, calls));
    assert_eq!(backend.collector.span_count(), 0);
}

#[tokio::test]
async fn shutdown_gives_up_at_its_deadline_and_counts_what_was_left() {
    // A backend that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acc = accepted.clone();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            acc.fetch_add(1, Ordering::SeqCst);
        }
    });
    let endpoint = endpoint(Protocol::HttpProtobuf, port);
    let mut s = settings(Some(signal(endpoint, Protocol::HttpProtobuf)));
    s.max_batch_size = 3;
    s.shutdown_timeout = Duration::from_millis(200);
    let m = Arc::new(SelfMetrics::default());
    let exp = Exporter::start(s, m.clone(), None, None).unwrap();
    for i in 0..3 {
        assert!(exp.submit(resource(1, "a"), span(&i.to_string())));
    }
    // The first batch (3 spans) is in flight, unanswered; 2 more spans wait in the queue.
    wait_until("a connection", || accepted.load(Ordering::SeqCst) == 1).await;
    for i in 3..5 {
        assert!(exp.submit(resource(1, "a"), span(&i.to_string())));
    }
    exp.shutdown().await;
    // The attempt in flight at the deadline is abandoned (one failed attempt); the queued batch
    // is dropped without an attempt: 5 spans dropped.
    assert_eq!(counts(&m), (0, 5, 1));
    hold.abort();
}
