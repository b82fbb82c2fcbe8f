//! Load generators: wrk (saturation) and oha (fixed rate with latency correction).
//!
//! Both are real programs run pinned to one CPU with `taskset`; their text / JSON output is
//! parsed here. Inputs: target URL, CPU, connections, duration (s), rate (req/s).
//! Outputs: requests completed and, for oha, latency percentiles (seconds).

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Result of one wrk run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Saturation {
    /// Requests completed (wrk's "N requests in").
    pub requests: u64,
    /// Requests per second over the run.
    pub rps: f64,
}

/// Runs `wrk -t1 -c{conns} -d{secs}s url` pinned to `cpu`.
pub fn wrk(url: &str, cpu: usize, conns: u32, secs: u32) -> Result<Saturation> {
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string(), "wrk", "-t1"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg(url)
        .output()
        .context("run wrk (apt-get install wrk; scripts/setup.sh does)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text)
}

fn parse_wrk(text: &str) -> Result<Saturation> {
    let requests = text
        .lines()
        .find_map(|l| {
            let (n, _) = l.trim().split_once(" requests in ")?;
            n.parse().ok()
        })
        .with_context(|| format!("no request count in wrk output: {text}"))?;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors: {text}");
    }
    Ok(Saturation { requests, rps })
}

/// Result of one oha run at a fixed rate.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FixedRate {
    /// Requests completed with a response.
    pub requests: u64,
    /// Achieved requests per second.
    pub rps: f64,
    /// Latency percentiles (seconds), corrected for coordinated omission.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// Runs `oha -z{secs}s -q{rate} -c{conns} --latency-correction` pinned to `cpu`, waiting for
/// requests in flight at the deadline (so every request sent is counted).
pub fn oha(url: &str, cpu: usize, rate: u32, conns: u32, secs: u32) -> Result<FixedRate> {
    let out = Command::new("taskset")
        .args([
            "-c",
            &cpu.to_string(),
            "oha",
            "--no-tui",
            "--output-format",
            "json",
        ])
        .arg("--latency-correction")
        .arg("--wait-ongoing-requests-after-deadline")
        .arg(format!("-z{secs}s"))
        .arg(format!("-q{rate}"))
        .arg(format!("-c{conns}"))
        .arg(url)
        .output()
        .context("run oha (cargo install oha; scripts/setup.sh does)")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_oha(&String::from_utf8_lossy(&out.stdout))
}

fn parse_oha(text: &str) -> Result<FixedRate> {
    let v: serde_json::Value = serde_json::from_str(text).context("oha JSON")?;
    let f = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("oha JSON has no {p}: {text}"))
    };
    let ok = v
        .pointer("/statusCodeDistribution/200")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let total: u64 = v
        .pointer("/statusCodeDistribution")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    if total != ok {
        bail!("oha saw non-200 responses: {text}");
    }
    Ok(FixedRate {
        requests: ok,
        rps: f("/summary/requestsPerSec")?,
        p50: f("/latencyPercentiles/p50")?,
        p99: f("/latencyPercentiles/p99")?,
        p999: f("/latencyPercentiles/p99.9")?,
    })
}

/// Runs `h2load -c{clients} --rps={rate/clients} -D{secs} url` (HTTP/2 prior knowledge, one
/// stream at a time per client) pinned to `cpu`; returns the requests that succeeded.
pub fn h2load(url: &str, cpu: usize, rate: u32, clients: u32, secs: u32) -> Result<u64> {
    let out = Command::new("taskset")
        .args(["-c", &cpu.to_string(), "h2load"])
        .arg(format!("-c{clients}"))
        .arg(format!("--rps={}", (rate / clients).max(1)))
        .arg(format!("-D{secs}"))
        .arg(url)
        .output()
        .context("run h2load (apt-get install nghttp2-client; scripts/setup.sh does)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "h2load failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_h2load(&text)
}

fn parse_h2load(text: &str) -> Result<u64> {
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, 0 errored, 0 timeout"
    let line = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .with_context(|| format!("no requests line in h2load output: {text}"))?;
    let field = |name: &str| {
        line.split(',')
            .find_map(|p| {
                p.trim()
                    .trim_start_matches("requests:")
                    .trim()
                    .strip_suffix(name)
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    let ok = field("succeeded").context("h2load succeeded count")?;
    if field("failed") != Some(0) || field("errored") != Some(0) {
        bail!("h2load saw failures: {line}");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output() {
        let t = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n\
                 \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                 \x20   Latency    50.00us   10.00us   1.00ms   90.00%\n\
                 \x20 123456 requests in 1.00s, 30.00MB read\nRequests/sec: 123400.50\n\
                 Transfer/sec:     30.00MB\n";
        let s = parse_wrk(t).unwrap();
        assert_eq!(s.requests, 123456);
        assert!((s.rps - 123400.5).abs() < 1e-9);
        assert!(parse_wrk("garbage").is_err());
        assert!(parse_wrk(&format!("{t}  Non-2xx or 3xx responses: 5\n")).is_err());
    }

    #[test]
    fn h2load_output() {
        let t = "finished in 1.00s, 100.00 req/s, 3.10KB/s\nrequests: 100 total, 100 started, 100 done, 98 succeeded, 2 failed, 0 errored, 0 timeout\n";
        assert!(parse_h2load(t).is_err(), "failures are an error");
        let ok = t.replace("98 succeeded, 2 failed", "100 succeeded, 0 failed");
        assert_eq!(parse_h2load(&ok).unwrap(), 100);
        assert!(parse_h2load("nothing").is_err());
    }
}
