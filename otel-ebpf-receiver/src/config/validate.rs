//! Config validation: the value ranges and cross-key rules of [`Config`].
//!
//! Stage: start-up, right after parsing. Input: a parsed [`Config`] and the name of its source.
//! Output: `Ok(())` or the first problem in file order as a one-line [`ConfigError::Invalid`]
//! naming the key path. Limits: no file-system or network access (certificate files are read
//! and endpoints reached by the exporter); the only host-dependent rule is the page size for
//! `ring_buffer_bytes`.

use super::{
    AnomalyConfig, Config, ConfigError, ExportersConfig, Filters, OtlpConfig, RoutesConfig,
    SamplingConfig, invalid, parse_addr,
};
use std::fmt::Display;

/// Smallest accepted interval or timeout (seconds).
pub(crate) const MIN_SECONDS: f64 = 0.001;
/// Largest accepted interval or timeout (seconds; one year, far below `Instant` overflow).
pub(crate) const MAX_SECONDS: f64 = 31_536_000.0;
/// Largest accepted `ring_buffer_bytes` (bytes; 1 GiB).
pub(crate) const MAX_RING_BUFFER: u32 = 1 << 30;
/// Largest accepted `queue_size` (spans; guards against a typo allocating gigabytes).
pub(crate) const MAX_QUEUE: usize = 1 << 24;

type Check = Result<(), (String, String)>;

fn fail(key: impl Into<String>, message: impl Into<String>) -> Check {
    Err((key.into(), message.into()))
}

impl Config {
    /// Validates, naming `origin` in the error.
    pub(super) fn validate_as(&self, origin: &str) -> Result<(), ConfigError> {
        self.check()
            .map_err(|(key, message)| invalid(origin, &key, message))
    }

    fn check(&self) -> Check {
        let r = &self.receiver;
        let max_capture = otel_ebpf_common::MAX_CAPTURE as u32;
        if !(1..=max_capture).contains(&r.capture_bytes) {
            let msg = format!(
                "must be in 1..={max_capture} (bytes), got {}",
                r.capture_bytes
            );
            return fail("receiver.capture_bytes", msg);
        }
        check_ring_buffer(r.ring_buffer_bytes)?;
        check_seconds(
            "receiver.request_timeout_seconds",
            r.request_timeout_seconds,
        )?;
        check_filters(&r.filters)?;
        if !(0.001..=1.0).contains(&r.tls.hold_exec_max_seconds) {
            return fail(
                "receiver.tls.hold_exec_max_seconds",
                "must be between 0.001 and 1 (seconds)",
            );
        }
        if r.tls.linger_files > 1024 {
            return fail("receiver.tls.linger_files", "must be at most 1024 (files)");
        }
        if !(1..=100_000).contains(&r.tls.cache_entries) {
            return fail(
                "receiver.tls.cache_entries",
                "must be in 1..=100000 (entries)",
            );
        }
        if r.tls
            .state_dir
            .as_deref()
            .is_some_and(|d| !d.starts_with('/'))
        {
            return fail("receiver.tls.state_dir", "must be an absolute path or null");
        }
        check_anomalies(&r.kernel_timing.anomalies)?;
        if !(0.0..=10.0).contains(&r.traces.join_wait_seconds) {
            return fail(
                "receiver.traces.join_wait_seconds",
                "must be between 0 and 10 (seconds)",
            );
        }
        for key in r.traces.peer_service.keys() {
            if key.parse::<std::net::IpAddr>().is_err()
                && key.parse::<std::net::SocketAddr>().is_err()
            {
                return fail(
                    format!("receiver.traces.peer_service.{key}"),
                    "keys are an IP address or ip:port",
                );
            }
        }
        let ls = &r.kernel_timing.sampling;
        let pre = "receiver.kernel_timing.sampling.";
        if !(ls.connection_rate > 0.0 && ls.connection_rate <= 1.0) {
            return fail(format!("{pre}connection_rate"), "must be in (0, 1]");
        }
        if ls.skb_interval == 0 {
            return fail(format!("{pre}skb_interval"), "must be ≥ 1");
        }
        for (k, v) in [
            ("window_seconds", ls.window_seconds),
            ("period_seconds", ls.period_seconds),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return fail(format!("{pre}{k}"), "must be in (0, 86400] seconds");
            }
        }
        if !(ls.srtt_threshold_ms.is_finite() && ls.srtt_threshold_ms >= 0.0) {
            return fail(format!("{pre}srtt_threshold_ms"), "must be ≥ 0");
        }
        if ls.retransmit_threshold > 255 {
            return fail(format!("{pre}retransmit_threshold"), "must be 0..=255");
        }
        check_routes(&r.routes)?;
        check_sampling(&r.sampling)?;
        check_exporters(&self.exporters)?;
        let t = &self.telemetry;
        check_address("telemetry.health_address", &t.health_address)?;
        check_address("telemetry.metrics_address", &t.metrics_address)?;
        if let (Ok(Some(h)), Ok(Some(m))) = (
            parse_addr(&t.health_address),
            parse_addr(&t.metrics_address),
        ) && h == m
            && h.port() != 0
        {
            return fail(
                "telemetry.metrics_address",
                format!("{m} is also health_address; use another port"),
            );
        }
        Ok(())
    }
}

pub(super) fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(p).unwrap_or(4096).max(4096)
}

fn check_ring_buffer(bytes: u32) -> Check {
    let min = page_size();
    if !bytes.is_power_of_two() || bytes < min || bytes > MAX_RING_BUFFER {
        let msg = format!(
            "must be a power of two in {min}..={MAX_RING_BUFFER} (bytes; at least 4096 and the page size), got {bytes}"
        );
        return fail("receiver.ring_buffer_bytes", msg);
    }
    Ok(())
}

fn check_seconds(key: &str, v: f64) -> Check {
    if !v.is_finite() || !(MIN_SECONDS..=MAX_SECONDS).contains(&v) {
        return fail(
            key,
            format!("must be a finite number of seconds in {MIN_SECONDS}..={MAX_SECONDS}, got {v}"),
        );
    }
    Ok(())
}

fn check_filters(f: &Filters) -> Check {
    const P: &str = "receiver.filters";
    check_nonzero(
        &format!("{P}.include_pids"),
        &f.include_pids,
        "pid 0 is not a process",
    )?;
    check_nonzero(
        &format!("{P}.exclude_pids"),
        &f.exclude_pids,
        "pid 0 is not a process",
    )?;
    for (list, name) in [
        (&f.include_executables, "include_executables"),
        (&f.exclude_executables, "exclude_executables"),
    ] {
        for (i, exe) in list.iter().enumerate() {
            if exe.is_empty() || exe.contains('\0') || exe.ends_with('/') {
                return fail(
                    format!("{P}.{name}[{i}]"),
                    format!("{exe:?} is not an executable name or path"),
                );
            }
        }
    }
    check_nonzero(
        &format!("{P}.include_ports"),
        &f.include_ports,
        "port 0 never appears on a connection",
    )?;
    check_nonzero(
        &format!("{P}.exclude_ports"),
        &f.exclude_ports,
        "port 0 never appears on a connection",
    )?;
    check_disjoint(
        P,
        "pid",
        ("include_pids", &f.include_pids),
        ("exclude_pids", &f.exclude_pids),
    )?;
    check_disjoint(
        P,
        "executable",
        ("include_executables", &f.include_executables),
        ("exclude_executables", &f.exclude_executables),
    )?;
    check_disjoint(
        P,
        "port",
        ("include_ports", &f.include_ports),
        ("exclude_ports", &f.exclude_ports),
    )
}

fn check_nonzero<T: Copy + Into<u32>>(key: &str, list: &[T], why: &str) -> Check {
    match list.iter().position(|v| (*v).into() == 0) {
        Some(i) => fail(format!("{key}[{i}]"), why),
        None => Ok(()),
    }
}

/// A value both included and excluded is contradictory: the error names the exclude entry.
fn check_disjoint<T: PartialEq + Display>(
    prefix: &str,
    what: &str,
    inc: (&str, &[T]),
    exc: (&str, &[T]),
) -> Check {
    for (j, v) in exc.1.iter().enumerate() {
        if let Some(i) = inc.1.iter().position(|x| x == v) {
            let msg = format!(
                "{what} {v} is also listed in {}[{i}]; a value cannot be both included and excluded",
                inc.0
            );
            return fail(format!("{prefix}.{}[{j}]", exc.0), msg);
        }
    }
    Ok(())
}

fn check_anomalies(a: &AnomalyConfig) -> Check {
    const P: &str = "receiver.kernel_timing.anomalies";
    let (min, max) = (
        AnomalyConfig::MIN_WINDOW_SECONDS,
        AnomalyConfig::MAX_WINDOW_SECONDS,
    );
    let w = a.window_seconds;
    if !w.is_finite() || !(min..=max).contains(&w) {
        return fail(
            format!("{P}.window_seconds"),
            format!("must be a number of seconds in {min}..={max}, got {w}"),
        );
    }
    for (name, v, unit) in [
        ("reset_storm_threshold", a.reset_storm_threshold, "resets"),
        (
            "connect_failure_min_attempts",
            a.connect_failure_min_attempts,
            "attempts",
        ),
        (
            "peer_connection_spike",
            a.peer_connection_spike,
            "connections",
        ),
    ] {
        if v == 0 {
            return fail(
                format!("{P}.{name}"),
                format!("must be at least 1 ({unit}), got 0"),
            );
        }
    }
    let r = a.connect_failure_ratio;
    if r.is_nan() || r <= 0.0 || r > 1.0 {
        return fail(
            format!("{P}.connect_failure_ratio"),
            format!("must be a ratio with 0 < ratio <= 1 (failed / attempted connects), got {r}"),
        );
    }
    Ok(())
}

fn check_exporters(e: &ExportersConfig) -> Check {
    check_otlp(&e.otlp)?;
    check_seconds("exporters.flush_interval_seconds", e.flush_interval_seconds)?;
    if !(1..=MAX_QUEUE).contains(&e.queue_size) {
        return fail(
            "exporters.queue_size",
            format!("must be in 1..={MAX_QUEUE} (spans), got {}", e.queue_size),
        );
    }
    if !(1..=e.queue_size).contains(&e.max_batch_size) {
        let msg = format!(
            "must be in 1..=queue_size ({}) (spans), got {}",
            e.queue_size, e.max_batch_size
        );
        return fail("exporters.max_batch_size", msg);
    }
    if !(4096..=64 << 20).contains(&e.max_metrics_request_bytes) {
        return fail(
            "exporters.max_metrics_request_bytes",
            format!(
                "must be in 4096..=67108864 (bytes), got {}",
                e.max_metrics_request_bytes
            ),
        );
    }
    check_seconds(
        "exporters.metrics_interval_seconds",
        e.metrics_interval_seconds,
    )
}

fn check_otlp(o: &OtlpConfig) -> Check {
    const P: &str = "exporters.otlp";
    for (name, url) in [
        ("endpoint", &o.endpoint),
        ("traces_endpoint", &o.traces_endpoint),
        ("metrics_endpoint", &o.metrics_endpoint),
        ("logs_endpoint", &o.logs_endpoint),
    ] {
        if let Some(url) = url {
            check_url(&format!("{P}.{name}"), url)?;
        }
    }
    if let Some(p) = &o.protocol
        && p != "grpc"
        && p != "http/protobuf"
    {
        return fail(
            format!("{P}.protocol"),
            format!("must be `grpc` or `http/protobuf`, got {p:?}"),
        );
    }
    for (name, value) in &o.headers {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return fail(
                format!("{P}.headers"),
                format!("{name:?} is not a valid HTTP header name"),
            );
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return fail(
                format!("{P}.headers.{name}"),
                "not a valid HTTP header value (control characters?)",
            );
        }
    }
    if let Some(t) = o.timeout_seconds {
        check_seconds(&format!("{P}.timeout_seconds"), t)?;
    }
    if let Some(c) = &o.compression
        && c != "gzip"
        && c != "none"
    {
        return fail(
            format!("{P}.compression"),
            format!("must be `gzip` or `none`, got {c:?}"),
        );
    }
    for (name, path) in [
        ("certificate", &o.certificate),
        ("client_certificate", &o.client_certificate),
        ("client_key", &o.client_key),
    ] {
        if path.as_deref() == Some("") {
            return fail(
                format!("{P}.{name}"),
                "empty path; use null (or omit the key) to leave it unset",
            );
        }
    }
    match (&o.client_certificate, &o.client_key) {
        (Some(_), None) => fail(
            format!("{P}.client_key"),
            "must be set when client_certificate is (mTLS needs both)",
        ),
        (None, Some(_)) => fail(
            format!("{P}.client_certificate"),
            "must be set when client_key is (mTLS needs both)",
        ),
        _ => Ok(()),
    }
}

fn check_url(key: &str, url: &str) -> Check {
    let ok = url.parse::<hyper::Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    });
    if !ok {
        return fail(
            key,
            format!("{url:?} is not an http:// or https:// URL with a host"),
        );
    }
    Ok(())
}

fn check_address(key: &str, addr: &str) -> Check {
    if parse_addr(addr).is_err() {
        let msg = format!(
            "{addr:?} is not IP:port (e.g. 127.0.0.1:13133 or [::1]:13133; host names are not resolved), nor empty to disable"
        );
        return fail(key, msg);
    }
    Ok(())
}

fn check_routes(r: &RoutesConfig) -> Check {
    const P: &str = "receiver.routes";
    let mut total = 0;
    for (service, patterns) in &r.patterns {
        if service.is_empty() {
            return fail(
                format!("{P}.patterns"),
                "empty service name (use \"*\" for every service)",
            );
        }
        for (i, p) in patterns.iter().enumerate() {
            if let Err(e) = crate::span::route::check_pattern(p) {
                return fail(format!("{P}.patterns.{service}[{i}]"), e);
            }
        }
        total += patterns.len();
    }
    if total > RoutesConfig::MAX_PATTERNS {
        return fail(
            format!("{P}.patterns"),
            format!(
                "at most {} patterns in all, got {total}",
                RoutesConfig::MAX_PATTERNS
            ),
        );
    }
    for (name, v, max) in [
        ("max_children", r.max_children, RoutesConfig::MAX_CHILDREN),
        ("max_span_names", r.max_span_names, RoutesConfig::MAX_NAMES),
        ("max_services", r.max_services, RoutesConfig::MAX_NAMES),
    ] {
        if !(1..=max).contains(&v) {
            return fail(
                format!("{P}.{name}"),
                format!("must be in 1..={max}, got {v}"),
            );
        }
    }
    Ok(())
}

fn check_sampling(s: &SamplingConfig) -> Check {
    const P: &str = "receiver.sampling";
    let p = s.sampling_percentage;
    if !p.is_finite() || !(0.0..=100.0).contains(&p) {
        return fail(
            format!("{P}.sampling_percentage"),
            format!("must be a percentage in 0..=100, got {p}"),
        );
    }
    if let Some(ms) = s.keep_slower_than_ms
        && (!ms.is_finite() || ms <= 0.0 || ms > MAX_SECONDS * 1000.0)
    {
        return fail(
            format!("{P}.keep_slower_than_ms"),
            format!("must be a number of milliseconds > 0 (or null for no such rule), got {ms}"),
        );
    }
    Ok(())
}
