//! Retry with jittered exponential backoff for OTLP export attempts.
//!
//! Stage: inside **export**, around each request. Input: an attempt closure, a
//! [`RetrySettings`] and the shutdown signal. Output: the first success, or the last error
//! once the error is permanent, the retry budget (`max_elapsed`) or the shutdown deadline is
//! exhausted. Every failed attempt increments `export_failures`.
//!
//! Sources: OTLP spec "Failures" / "Retryable Response Codes" / "OTLP/HTTP Throttling"
//! (<https://opentelemetry.io/docs/specs/otlp/#failures>): retry transient errors with
//! exponential backoff and jitter; honour a server-suggested delay (`Retry-After`).

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use super::RetrySettings;
use crate::telemetry::SelfMetrics;

/// Why one export attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttemptError {
    /// Transient (backend unavailable, throttled, timeout): worth retrying.
    pub retryable: bool,
    /// Delay suggested by the server (HTTP `Retry-After`, seconds).
    pub retry_after: Option<Duration>,
    /// Human-readable cause for the log.
    pub message: String,
}

impl AttemptError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// Longest server-suggested delay (`Retry-After`) taken as is; longer ones are clamped to it
/// (a hostile or broken backend may send `18446744073709551615`).
pub(crate) use super::reply::MAX_RETRY_AFTER;

/// Un-jittered backoff before retry number `retry` (0-based): `initial × 2^retry`, capped at
/// `max_backoff`.
pub(crate) fn backoff(policy: &RetrySettings, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    policy
        .initial_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff)
}

/// Equal jitter: a uniformly random delay in `[d/2, d]`.
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The shutdown deadline, if shutdown started.
pub(crate) fn shutdown_deadline(closing: &watch::Receiver<Option<Instant>>) -> Option<Instant> {
    *closing.borrow()
}

/// Resolves with the shutdown deadline once shutdown starts; never if the exporter handle was
/// dropped without a shutdown (the tasks then finish their queue normally).
pub(crate) async fn shutdown_started(mut closing: watch::Receiver<Option<Instant>>) -> Instant {
    let deadline = closing
        .wait_for(Option::is_some)
        .await
        .map(|d| d.unwrap_or_else(Instant::now));
    match deadline {
        Ok(deadline) => deadline,
        Err(_) => std::future::pending().await,
    }
}

/// Resolves when the shutdown deadline passes.
async fn deadline_passed(closing: watch::Receiver<Option<Instant>>) {
    let deadline = shutdown_started(closing).await;
    tokio::time::sleep_until(deadline.into()).await;
}

/// Runs `attempt` until it succeeds or retrying is no longer allowed; returns the last error
/// otherwise. Once shutdown starts, the wait between attempts is cut short (one more attempt
/// is made), no attempt starts after the shutdown deadline, and an attempt still running at
/// the deadline is abandoned (counted as a failed attempt).
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetrySettings,
    closing: &watch::Receiver<Option<Instant>>,
    self_metrics: &SelfMetrics,
    mut attempt: F,
) -> Result<T, AttemptError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let start = Instant::now();
    let mut retry = 0u32;
    loop {
        if shutdown_deadline(closing).is_some_and(|d| Instant::now() >= d) {
            return Err(AttemptError::permanent("shutdown deadline passed"));
        }
        let result = tokio::select! {
            r = attempt() => r,
            _ = deadline_passed(closing.clone()) => {
                Err(AttemptError::permanent("export cut short by the shutdown deadline"))
            }
        };
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        SelfMetrics::add(&self_metrics.export_failures, 1);
        log::debug!("export attempt {} failed: {}", retry + 1, err.message);
        if !err.retryable {
            return Err(err);
        }
        let delay = err
            .retry_after
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| jitter(backoff(policy, retry)));
        retry = retry.saturating_add(1);
        // Checked: a budget or delay too large for `Instant` means "no limit" / "never".
        let mut limit = start.checked_add(policy.max_elapsed);
        if let Some(deadline) = shutdown_deadline(closing) {
            limit = Some(limit.map_or(deadline, |l| l.min(deadline)));
        }
        let Some(retry_at) = Instant::now().checked_add(delay) else {
            return Err(err);
        };
        if limit.is_some_and(|l| retry_at > l) {
            return Err(err);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown_started(closing.clone()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    fn policy(max_elapsed_ms: u64) -> RetrySettings {
        RetrySettings {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            max_elapsed: Duration::from_millis(max_elapsed_ms),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetrySettings::default();
        let got: Vec<u64> = (0..9).map(|r| backoff(&p, r).as_millis() as u64).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(backoff(&p, 200), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        for _ in 0..1000 {
            let j = jitter(Duration::from_millis(100));
            assert!(
                j >= Duration::from_millis(50) && j <= Duration::from_millis(100),
                "{j:?}"
            );
        }
    }

    async fn run(
        policy: RetrySettings,
        outcomes: Vec<Result<u32, AttemptError>>,
    ) -> (Result<u32, AttemptError>, usize, u64) {
        let metrics = SelfMetrics::default();
        let (_tx, rx) = watch::channel(None);
        let calls = Arc::new(Mutex::new(outcomes.into_iter()));
        let n = Arc::new(Mutex::new(0usize));
        let r = with_retry(&policy, &rx, &metrics, || {
            *n.lock().unwrap() += 1;
            let next = calls.lock().unwrap().next().unwrap();
            async move { next }
        })
        .await;
        let calls = *n.lock().unwrap();
        (r, calls, metrics.export_failures.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let e = AttemptError::retryable("unavailable");
        let (r, calls, failures) = run(policy(10_000), vec![Err(e.clone()), Err(e), Ok(7)]).await;
        assert_eq!((r, calls, failures), (Ok(7), 3, 2));
    }

    #[tokio::test]
    async fn permanent_error_is_not_retried() {
        let e = AttemptError::permanent("bad request");
        let (r, calls, failures) = run(policy(10_000), vec![Err(e.clone()), Ok(1)]).await;
        assert_eq!((r, calls, failures), (Err(e), 1, 1));
    }

    #[tokio::test]
    async fn zero_budget_means_one_attempt() {
        let e = AttemptError::retryable("down");
        let (r, calls, failures) = run(policy(0), vec![Err(e.clone()), Ok(1)]).await;
        assert_eq!((r, calls, failures), (Err(e), 1, 1));
    }

    #[tokio::test]
    async fn retry_after_longer_than_budget_gives_up() {
        let mut e = AttemptError::retryable("throttled");
        e.retry_after = Some(Duration::from_secs(60));
        let (r, calls, failures) = run(policy(1_000), vec![Err(e.clone()), Ok(1)]).await;
        assert_eq!((r, calls, failures), (Err(e), 1, 1));
    }

    #[tokio::test]
    async fn retry_after_extremes_neither_panic_nor_wait() {
        // A hostile or broken backend: `Retry-After: 18446744073709551615` (u64::MAX seconds)
        // and the largest Duration. Either must give up at once (beyond any budget), not
        // overflow `Instant + Duration`.
        for d in [Duration::from_secs(u64::MAX), Duration::MAX] {
            let mut e = AttemptError::retryable("throttled");
            e.retry_after = Some(d);
            let (r, calls, failures) = run(policy(1_000), vec![Err(e.clone()), Ok(1)]).await;
            assert_eq!((r, calls, failures), (Err(e), 1, 1));
        }
        // Zero means "retry now".
        let mut e = AttemptError::retryable("throttled");
        e.retry_after = Some(Duration::ZERO);
        let (r, calls, _) = run(policy(1_000), vec![Err(e), Ok(1)]).await;
        assert_eq!((r, calls), (Ok(1), 2));
    }

    #[tokio::test]
    async fn huge_retry_budget_does_not_overflow() {
        let p = RetrySettings {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            max_elapsed: Duration::MAX,
        };
        let e = AttemptError::retryable("down");
        let (r, calls, _) = run(p, vec![Err(e), Ok(3)]).await;
        assert_eq!((r, calls), (Ok(3), 2));
    }

    async fn run_with_deadline(
        policy: RetrySettings,
        deadline: Instant,
    ) -> (AttemptError, u64, u64) {
        let metrics = SelfMetrics::default();
        let (tx, rx) = watch::channel(None);
        tx.send_replace(Some(deadline));
        let mut calls = 0;
        let r: Result<(), _> = with_retry(&policy, &rx, &metrics, || {
            calls += 1;
            async { Err(AttemptError::retryable("down")) }
        })
        .await;
        (
            r.unwrap_err(),
            calls,
            metrics.export_failures.load(Ordering::Relaxed),
        )
    }

    #[tokio::test]
    async fn no_attempt_starts_after_the_shutdown_deadline() {
        let (e, calls, failures) = run_with_deadline(policy(10_000), Instant::now()).await;
        assert_eq!(
            (e.message.as_str(), calls, failures),
            ("shutdown deadline passed", 0, 0)
        );
    }

    #[tokio::test]
    async fn no_retry_whose_backoff_ends_past_the_shutdown_deadline() {
        let slow = RetrySettings {
            initial_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(60),
            max_elapsed: Duration::from_secs(3600),
        };
        // The first backoff (30..60 s) would end after the deadline (5 s): give up at once.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (e, calls, failures) = run_with_deadline(slow, deadline).await;
        assert_eq!((e.message.as_str(), calls, failures), ("down", 1, 1));
    }

    #[tokio::test]
    async fn attempt_running_at_the_deadline_is_abandoned_and_counted() {
        let metrics = SelfMetrics::default();
        let (tx, rx) = watch::channel(None);
        tx.send_replace(Some(Instant::now() + Duration::from_millis(20)));
        let r: Result<(), _> = with_retry(&policy(10_000), &rx, &metrics, || {
            std::future::pending::<Result<(), AttemptError>>()
        })
        .await;
        assert_eq!(
            r.unwrap_err().message,
            "export cut short by the shutdown deadline"
        );
        assert_eq!(metrics.export_failures.load(Ordering::Relaxed), 1);
    }
}
