//! Monotonic → wall-clock conversion, done in exactly this one place.
//!
//! Input: CLOCK_MONOTONIC nanoseconds as produced by `bpf_ktime_get_ns` in the probes.
//! Output: nanoseconds since the Unix epoch (UTC), as OTLP wants them.
//! Limits: the offset is sampled once at start-up; NTP slews after that are not followed.

/// Converts kernel monotonic timestamps to Unix-epoch nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// realtime − monotonic, ns.
    offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl Clock {
    /// Samples CLOCK_REALTIME and CLOCK_MONOTONIC back to back.
    pub fn from_system() -> Self {
        let mono = now(libc::CLOCK_MONOTONIC);
        let real = now(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    /// A clock with a fixed offset (ns), for golden tests.
    pub fn with_offset(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// Kernel monotonic ns → Unix-epoch ns (saturating at 0).
    pub fn to_unix_nanos(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.offset_ns).max(0) as u64
    }

    /// Current CLOCK_MONOTONIC in ns (same clock as the probes' timestamps).
    pub fn monotonic_now_ns() -> u64 {
        now(libc::CLOCK_MONOTONIC) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_offset() {
        let c = Clock::with_offset(1_000);
        assert_eq!(c.to_unix_nanos(5), 1_005);
        assert_eq!(Clock::with_offset(-10).to_unix_nanos(5), 0);
    }

    #[test]
    fn system_clock_is_near_now() {
        let c = Clock::from_system();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let got = c.to_unix_nanos(Clock::monotonic_now_ns());
        assert!(got.abs_diff(unix) < 1_000_000_000, "{got} vs {unix}");
    }
}
