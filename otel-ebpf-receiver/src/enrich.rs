//! Resource enrichment: who is the observed process.
//!
//! Stage: span → **enrich** → export. Input: a pid. Output: the resource attributes for it
//! (`service.name`, `process.*`, `host.name`, `container.id`, `telemetry.sdk.*`), read from
//! /proc once per process and cached until the process exits.
//!
//! Sources, all under the configured proc root (`/proc` in production):
//! `PID/exe` (symlink: executable path and name), `PID/comm` (name fallback), `PID/cmdline`
//! (command line), `PID/environ` (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), `PID/cgroup`
//! (container id and Kubernetes pod UID, [`cgroup`]). With Kubernetes enrichment on
//! ([`kubernetes`]), a process in a pod also gets its workload identity (`k8s.*`,
//! `container.image.name`, `service.namespace`, `service.version`, `service.instance.id`, and
//! `service.name` by the Kubernetes rules unless the process sets `OTEL_SERVICE_NAME`). Reading `environ` and `exe` of other users' processes needs root or
//! CAP_SYS_PTRACE; whatever cannot be read is left out, never an error.
//!
//! Limits: `environ` is the environment the process was exec'd with (later `setenv` calls are
//! invisible). A pid read after the process vanished gets a minimal resource that is not cached
//! (`service.name=unknown_service`); a pid reused by a new process before [`Enricher::forget`]
//! was called keeps the old process's resource. The cache is bounded (oldest entry evicted).
//! `process.command_line` may contain secrets passed as arguments: well-known ones are
//! redacted ([`redact`]), and it is capped at [`MAX_COMMAND_LINE_BYTES`]. The unredacted
//! arguments are exported only when asked ([`Enricher::with_full_command_line`]), as
//! `process.command_args` instead of `process.command_line`.
//! A process in a container whose pod is not in the Kubernetes cache yet is read again on its
//! next event after the cache changed.

pub mod cgroup;
pub mod kubernetes;

pub mod redact;

use crate::attr::{AttrValue, Attributes};
use crate::hash::{HashMap, HashMapExt};
use otel_ebpf_semconv::{resource as res, value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Resource of one observed process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessResource {
    /// Process id (host pid namespace).
    pub pid: u32,
    /// `service.name`: `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` of the process, else its
    /// pod's by the Kubernetes rules, else the executable name, else `unknown_service`.
    pub service_name: String,
    /// `process.executable.name`: basename of `/proc/PID/exe`, else `comm`; empty if unknown.
    pub executable_name: String,
    /// The resource attributes listed in the module docs, in order.
    pub attributes: Attributes,
    /// Network namespace inode (`/proc/PID/ns/net`), 0 when unknown: two ends of a
    /// connection are paired only within one namespace.
    pub netns: u64,
}

/// Most processes [`Enricher`] keeps cached by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 16_384;

/// Longest `process.command_line` kept (bytes, cut at a UTF-8 boundary).
pub const MAX_COMMAND_LINE_BYTES: usize = 4096;

/// One cached process.
#[derive(Debug)]
struct Entry {
    /// Insertion sequence number (key of `order`).
    seq: u64,
    res: Arc<ProcessResource>,
    /// Kubernetes cache generation when the process's pod was missing: re-read once it moved.
    pending: Option<u64>,
    /// Sidecar mode: the process is not in this pod (its spans are not exported).
    foreign: bool,
}

/// Builds and caches [`ProcessResource`]s from a /proc tree.
#[derive(Debug)]
pub struct Enricher {
    proc_root: PathBuf,
    host_name: String,
    capacity: usize,
    /// pid → cached resource.
    cache: HashMap<u32, Entry>,
    /// insertion sequence number → pid, oldest first.
    order: BTreeMap<u64, u32>,
    next_seq: u64,
    /// Export the unredacted arguments as `process.command_args`.
    full_command_line: bool,
    /// Pod identity source (None: Kubernetes enrichment off).
    kube: Option<kubernetes::Kubernetes>,
}

impl Enricher {
    /// An enricher reading `proc_root` (`/proc` in production, a fake tree in tests) and
    /// stamping `host_name` (see [`host_name`]) on every resource; empty omits `host.name`.
    /// Caches up to [`DEFAULT_CACHE_CAPACITY`] processes.
    pub fn new(proc_root: PathBuf, host_name: String) -> Self {
        Self {
            proc_root,
            host_name,
            capacity: DEFAULT_CACHE_CAPACITY,
            cache: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            full_command_line: false,
            kube: None,
        }
    }

    /// Same enricher exporting the full, unredacted arguments as `process.command_args`
    /// (string array) instead of the redacted `process.command_line`.
    pub fn with_full_command_line(mut self, full: bool) -> Self {
        self.full_command_line = full;
        self
    }

    /// Same enricher with a different cache bound (at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Same enricher adding pod identity from `kube` (None: off).
    pub fn with_kubernetes(mut self, kube: Option<kubernetes::Kubernetes>) -> Self {
        self.kube = kube;
        self
    }

    /// The resource of `pid`: cached, or read from /proc now. Never fails: a process that
    /// cannot be read gets a resource with what is known (at least `process.pid`).
    pub fn resource(&mut self, pid: u32) -> Arc<ProcessResource> {
        if let Some(e) = self.cache.get(&pid) {
            let stale =
                (e.pending.zip(self.kube.as_ref())).is_some_and(|(g, k)| k.generation() != g);
            if !stale {
                return Arc::clone(&e.res);
            }
            self.forget(pid);
        }
        let (r, alive, pod) = read_process(
            &self.proc_root,
            pid,
            &self.host_name,
            self.full_command_line,
            self.kube.as_ref(),
        );
        let r = Arc::new(r);
        if alive {
            if self.cache.len() >= self.capacity
                && let Some((_, oldest)) = self.order.pop_first()
            {
                self.cache.remove(&oldest);
            }
            let (pending, foreign) = match pod {
                PodState::Missing(g) => (Some(g), false),
                PodState::Foreign => (None, true),
                PodState::Known => (None, false),
            };
            let e = Entry {
                seq: self.next_seq,
                res: Arc::clone(&r),
                pending,
                foreign,
            };
            self.cache.insert(pid, e);
            self.order.insert(self.next_seq, pid);
            self.next_seq += 1;
        }
        r
    }

    /// False when `pid`'s spans must not be exported: in Kubernetes sidecar mode, a process
    /// that is not in this pod (reads the process if it is not cached).
    pub fn in_scope(&mut self, pid: u32) -> bool {
        self.resource(pid);
        self.cache.get(&pid).is_none_or(|e| !e.foreign)
    }

    /// Drops the cached resource of `pid`; call it when the process exits.
    pub fn forget(&mut self, pid: u32) {
        if let Some(e) = self.cache.remove(&pid) {
            self.order.remove(&e.seq);
        }
    }

    /// Number of cached processes.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// The system hostname (`gethostname(2)`, else `/proc/sys/kernel/hostname`); empty if neither
/// can be read. In a container this is the container's UTS namespace hostname: run the
/// receiver in the host's UTS namespace to get the machine's name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a valid buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What the Kubernetes lookup said about a process.
enum PodState {
    /// In a known pod, not in a pod, or Kubernetes enrichment off.
    Known,
    /// In a container whose pod the cache does not hold (yet), at this cache generation.
    Missing(u64),
    /// Sidecar mode: in another pod, or not in a pod.
    Foreign,
}

/// Reads one process; the flag is false when `/proc/PID` does not exist (process gone).
fn read_process(
    root: &Path,
    pid: u32,
    host_name: &str,
    full_command_line: bool,
    kube: Option<&kubernetes::Kubernetes>,
) -> (ProcessResource, bool, PodState) {
    let dir = root.join(pid.to_string());
    let exe_path = std::fs::read_link(dir.join("exe")).ok().map(|p| {
        let p = p.to_string_lossy().into_owned();
        p.strip_suffix(" (deleted)")
            .map(str::to_string)
            .unwrap_or(p)
    });
    let exe_name = exe_path
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| {
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            Some(comm.trim_end_matches('\n').to_string()).filter(|c| !c.is_empty())
        });
    let cmdline = std::fs::read(dir.join("cmdline")).ok();
    let command_line = cmdline
        .as_deref()
        .filter(|_| !full_command_line)
        .and_then(command_line);
    let command_args = cmdline
        .as_deref()
        .filter(|_| full_command_line)
        .map(command_args)
        .filter(|a| !a.is_empty());
    let env_service = std::fs::read(dir.join("environ"))
        .ok()
        .and_then(|b| service_name_from_environ(&b));
    let netns = std::fs::read_link(dir.join("ns/net"))
        .ok()
        .and_then(|l| netns_inode(&l.to_string_lossy()))
        .unwrap_or(0);
    let ids = std::fs::read_to_string(dir.join("cgroup"))
        .map(|t| cgroup::parse_cgroup(&t))
        .unwrap_or_default();
    let (pod, state) = match kube.map(|k| (k, k.generation(), k.lookup(&ids))) {
        Some((_, _, kubernetes::Lookup::Found(p))) => (Some(p), PodState::Known),
        Some((_, g, kubernetes::Lookup::Missing)) => (None, PodState::Missing(g)),
        Some((k, _, kubernetes::Lookup::NotInPod)) if k.is_sidecar() => (None, PodState::Foreign),
        _ => (None, PodState::Known),
    };
    let container_id = ids.container_id;
    // Checked after the reads: if the directory is still there, what failed was permissions
    // (or a zombie), not a process that vanished half-way.
    let alive = dir.is_dir();

    let service_name = env_service
        .or_else(|| pod.as_ref().map(|p| p.service_name.clone()))
        .or_else(|| exe_name.clone())
        .unwrap_or_else(|| value::UNKNOWN_SERVICE.to_string());
    let mut attrs = Attributes::new();
    attrs.push(res::SERVICE_NAME, service_name.clone());
    attrs.push(res::PROCESS_PID, i64::from(pid));
    let optional = [
        (res::PROCESS_EXECUTABLE_NAME, exe_name.as_deref()),
        (res::PROCESS_EXECUTABLE_PATH, exe_path.as_deref()),
        (res::PROCESS_COMMAND_LINE, command_line.as_deref()),
        (res::HOST_NAME, Some(host_name).filter(|h| !h.is_empty())),
        (res::CONTAINER_ID, container_id.as_deref()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            attrs.push(k, v.to_string());
        }
    }
    if let Some(args) = command_args {
        attrs.push(res::PROCESS_COMMAND_ARGS, AttrValue::StrArray(args));
    }
    if let Some(p) = &pod {
        pod_attributes(&mut attrs, p);
    }
    attrs.push(res::TELEMETRY_SDK_NAME, value::SDK_NAME);
    attrs.push(res::TELEMETRY_SDK_LANGUAGE, value::SDK_LANGUAGE);
    attrs.push(res::TELEMETRY_SDK_VERSION, env!("CARGO_PKG_VERSION"));
    let r = ProcessResource {
        pid,
        service_name,
        executable_name: exe_name.unwrap_or_default(),
        attributes: attrs,
        netns,
    };
    (r, alive, state)
}

/// Appends a pod's identity; keys already present (the process's own) are kept as they are.
/// `container.image.tags` (a string array by the conventions) is not emitted: the attribute
/// model has no arrays; the tag still feeds `service.version`.
fn pod_attributes(attrs: &mut Attributes, pod: &kubernetes::PodIdentity) {
    use otel_ebpf_semconv::k8s;
    let service = [
        (k8s::SERVICE_NAMESPACE, Some(&pod.service_namespace)),
        (k8s::SERVICE_VERSION, pod.service_version.as_ref()),
        (k8s::SERVICE_INSTANCE_ID, pod.service_instance_id.as_ref()),
    ];
    let strings = service
        .into_iter()
        .filter_map(|(k, v)| Some((std::borrow::Cow::Borrowed(k), v?.clone())))
        .chain(pod.attributes.iter().cloned());
    for (k, v) in strings {
        if !v.is_empty() && !attrs.0.iter().any(|(a, _)| *a == k) {
            attrs.push(k, v);
        }
    }
}

/// The inode of a `net:[4026531840]` namespace link.
fn netns_inode(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The NUL-separated arguments of `/proc/PID/cmdline` (at most [`MAX_COMMAND_LINE_BYTES`]
/// bytes of them), unredacted.
fn command_args(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let raw = &raw[..raw.len().min(MAX_COMMAND_LINE_BYTES)];
    raw.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// NUL-separated arguments, secrets redacted ([`redact::command_line`]), joined by spaces,
/// capped at [`MAX_COMMAND_LINE_BYTES`].
fn command_line(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut s: String = redact::command_line(&args).join(" ");
    if s.len() > MAX_COMMAND_LINE_BYTES {
        let mut end = MAX_COMMAND_LINE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    (!s.trim().is_empty()).then_some(s)
}

/// `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded),
/// from a NUL-separated environment block. Empty values count as unset.
fn service_name_from_environ(environ: &[u8]) -> Option<String> {
    let var = |name: &str| {
        environ.split(|&b| b == 0).find_map(|entry| {
            let v = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            Some(String::from_utf8_lossy(v).into_owned())
        })
    };
    if let Some(v) = var("OTEL_SERVICE_NAME").filter(|v| !v.trim().is_empty()) {
        return Some(v.trim().to_string());
    }
    let attrs = var("OTEL_RESOURCE_ATTRIBUTES")?;
    attrs.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        let v = percent_decode(v.trim());
        (k.trim() == res::SERVICE_NAME && !v.is_empty()).then_some(v)
    })
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;

/// A resource for process `pid` named `service` (tests).
#[cfg(test)]
pub fn test_resource(pid: u32, service: &str) -> Arc<ProcessResource> {
    Arc::new(ProcessResource {
        pid,
        service_name: service.into(),
        executable_name: service.into(),
        attributes: {
            let mut a = Attributes::new();
            a.push(
                otel_ebpf_semconv::resource::SERVICE_NAME,
                service.to_string(),
            );
            a
        },
        netns: 1,
    })
}
