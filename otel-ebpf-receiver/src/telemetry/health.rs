//! The health answer, shaped as the OpenTelemetry Collector's `health_check` extension's.
//!
//! Stage: beside every stage. Input: [`Readiness`] (set by the pipeline once every probe is
//! attached, cleared at shutdown) and the clock. Output: the JSON body and status of `GET /`:
//! 200 `{"status":"Server available","upSince":"<RFC 3339>","uptime":"<Go duration>"}` once
//! ready, 503 `{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}`
//! before (the extension marshals Go's zero `time.Time` and an empty uptime then).
//! `upSince` is when the receiver became ready (UTC, nanoseconds with trailing zeros cut, as
//! Go's `time.RFC3339Nano`); `uptime` the time since, in Go's `time.Duration.String` form
//! (`49.0132518s`, `1h2m3.5s`, `750ms`).
//!
//! Our own code: two small formatters (a civil date from Unix days, Go's duration syntax);
//! no crate in the tree formats Go durations, and RFC 3339 with trimmed nanoseconds is ten
//! lines.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Status text when ready (as the Collector's `health_check`).
pub const STATUS_AVAILABLE: &str = "Server available";
/// Status text when not ready.
pub const STATUS_NOT_AVAILABLE: &str = "Server not available";

/// Whether the receiver is ready, and since when. The same `load`/`store` calls as an
/// `AtomicBool`; `store(true)` on a not-ready receiver records the time.
#[derive(Debug)]
pub struct Readiness {
    ready: AtomicBool,
    /// Unix time (ns) when it became ready.
    since_unix_ns: AtomicU64,
    /// Monotonic start of the process's clock, for the uptime.
    origin: Instant,
    /// Nanoseconds since `origin` when it became ready.
    since_mono_ns: AtomicU64,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            ready: AtomicBool::new(false),
            since_unix_ns: AtomicU64::new(0),
            origin: Instant::now(),
            since_mono_ns: AtomicU64::new(0),
        }
    }
}

impl Readiness {
    /// Sets readiness; becoming ready records the time (`upSince`).
    pub fn store(&self, ready: bool, order: Ordering) {
        if ready && !self.ready.load(Ordering::Acquire) {
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            self.since_unix_ns.store(unix, Ordering::Relaxed);
            self.since_mono_ns
                .store(self.origin.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        self.ready.store(ready, order);
    }

    /// Whether ready.
    pub fn load(&self, order: Ordering) -> bool {
        self.ready.load(order)
    }

    /// The health answer now: (HTTP status code, JSON body).
    pub fn answer(&self) -> (u16, String) {
        if !self.load(Ordering::Acquire) {
            return (503, body(STATUS_NOT_AVAILABLE, "0001-01-01T00:00:00Z", ""));
        }
        let since = self.since_unix_ns.load(Ordering::Relaxed);
        let mono = self.since_mono_ns.load(Ordering::Relaxed);
        let uptime = (self.origin.elapsed().as_nanos() as u64).saturating_sub(mono);
        (
            200,
            body(
                STATUS_AVAILABLE,
                &rfc3339_nanos(since),
                &go_duration(Duration::from_nanos(uptime)),
            ),
        )
    }
}

fn body(status: &str, up_since: &str, uptime: &str) -> String {
    // No value holds a character JSON would escape: fixed texts, digits and unit letters.
    format!(r#"{{"status":"{status}","upSince":"{up_since}","uptime":"{uptime}"}}"#)
}

/// Unix time (ns) as RFC 3339 in UTC with the fraction's trailing zeros cut (Go's
/// `time.RFC3339Nano`): `2026-12-07T02:15:00.5Z`, `1970-01-01T00:00:00Z`.
pub fn rfc3339_nanos(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let nanos = unix_ns % 1_000_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        fraction(nanos, 9)
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `.ddd` with `prec` digits of `v`, trailing zeros cut; empty when `v` is 0.
fn fraction(v: u64, prec: usize) -> String {
    if v == 0 {
        return String::new();
    }
    let digits = format!("{v:0prec$}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// A duration in Go's `time.Duration.String` form: `0s`, `1.5µs`, `750ms`, `49.0132518s`,
/// `2m3s`, `1h0m5s`.
pub fn go_duration(d: Duration) -> String {
    let u = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (unit, prec, div) = match u {
            0..1_000 => ("ns", 0, 1),
            1_000..1_000_000 => ("µs", 3, 1_000),
            _ => ("ms", 6, 1_000_000),
        };
        return format!("{}{}{unit}", u / div, fraction(u % div, prec));
    }
    let secs = u / 1_000_000_000;
    let frac = fraction(u % 1_000_000_000, 9);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, secs / 60) {
        (0, 0) => format!("{s}{frac}s"),
        (0, _) => format!("{m}m{s}{frac}s"),
        _ => format!("{h}h{m}m{s}{frac}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ns = Duration::from_nanos;
        for (d, want) in [
            (ns(0), "0s"),
            (ns(1), "1ns"),
            (ns(1_500), "1.5µs"),
            (ns(750_000_000), "750ms"),
            (ns(1_100_000), "1.1ms"),
            (ns(49_013_251_800), "49.0132518s"),
            (Duration::from_secs(123), "2m3s"),
            (ns(123_500_000_000), "2m3.5s"),
            (Duration::from_secs(3605), "1h0m5s"),
            (Duration::from_secs(90_000), "25h0m0s"),
        ] {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nanos(1_605_067_951_684_717_400),
            "2020-11-11T04:12:31.6847174Z"
        );
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339_nanos(4_107_542_400_500_000_000),
            "2100-03-01T00:00:00.5Z"
        );
    }

    #[test]
    fn answers() {
        let r = Readiness::default();
        let (code, body) = r.answer();
        assert_eq!(code, 503);
        assert_eq!(
            body,
            r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
        );
        r.store(true, Ordering::Release);
        let (code, body) = r.answer();
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "Server available");
        let since = v["upSince"].as_str().unwrap();
        assert!(
            since.ends_with('Z') && since.len() >= 20 && since.starts_with("20"),
            "{since}"
        );
        let uptime = v["uptime"].as_str().unwrap();
        assert!(uptime.ends_with('s'), "{uptime}");
        assert_eq!(v.as_object().unwrap().len(), 3);
        // Storing true again keeps the first time.
        r.store(true, Ordering::Release);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&r.answer().1).unwrap()["upSince"],
            since
        );
    }
}
