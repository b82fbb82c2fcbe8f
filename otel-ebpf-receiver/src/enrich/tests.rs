//! Unit tests of resource enrichment against a fake /proc tree in a temporary directory.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A fake /proc tree, removed on drop.
struct FakeProc {
    root: PathBuf,
}

impl FakeProc {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "otel-ebpf-enrich-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    /// Creates `PID/` with the given files; `exe` is a symlink target when given.
    fn process(&self, pid: u32, exe: Option<&str>, files: &[(&str, &[u8])]) -> &Self {
        let dir = self.root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(target) = exe {
            let link = dir.join("exe");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, link).unwrap();
        }
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        self
    }

    fn enricher(&self) -> Enricher {
        Enricher::new(self.root.clone(), "node-1".into())
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Resource attributes as `key=value` strings, in order.
fn attrs(r: &ProcessResource) -> Vec<String> {
    r.attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn sdk() -> [String; 3] {
    [
        "telemetry.sdk.name=otel-ebpf-receiver".into(),
        "telemetry.sdk.language=rust".into(),
        format!("telemetry.sdk.version={}", env!("CARGO_PKG_VERSION")),
    ]
}

#[test]
fn full_process_resource() {
    let fake = FakeProc::new();
    let cgroup = format!("0::/system.slice/docker-{ID}.scope\n");
    fake.process(
        100,
        Some("/usr/bin/python3.12"),
        &[
            ("cmdline", b"python3\0-m\0http.server\08000\0"),
            (
                "environ",
                b"HOME=/root\0OTEL_SERVICE_NAME=checkout\0PATH=/bin\0",
            ),
            ("cgroup", cgroup.as_bytes()),
            ("comm", b"python3\n"),
        ],
    );
    let r = fake.enricher().resource(100);
    assert_eq!((r.pid, r.service_name.as_str()), (100, "checkout"));
    assert_eq!(r.executable_name, "python3.12");
    let mut want = vec![
        "service.name=checkout".to_string(),
        "process.pid=100".into(),
        "process.executable.name=python3.12".into(),
        "process.executable.path=/usr/bin/python3.12".into(),
        "process.command_line=python3 -m http.server 8000".into(),
        "host.name=node-1".into(),
        format!("container.id={ID}"),
    ];
    want.extend(sdk());
    assert_eq!(attrs(&r), want);
}

#[test]
fn service_name_falls_back_to_executable() {
    let fake = FakeProc::new();
    fake.process(
        7,
        Some("/srv/app/api-server (deleted)"),
        &[("environ", b"A=b\0")],
    );
    let r = fake.enricher().resource(7);
    assert_eq!(r.service_name, "api-server");
    assert_eq!(r.executable_name, "api-server");
    let a = attrs(&r);
    assert!(a.contains(&"process.executable.path=/srv/app/api-server".to_string()));
    assert!(!a.iter().any(|a| a.starts_with("container.id=")), "{a:?}");
    assert!(
        !a.iter().any(|a| a.starts_with("process.command_line=")),
        "{a:?}"
    );
}

#[test]
fn exe_unreadable_uses_comm() {
    let fake = FakeProc::new();
    fake.process(
        8,
        None,
        &[("comm", b"nginx\n"), ("cmdline", b"nginx: worker process")],
    );
    let r = fake.enricher().resource(8);
    assert_eq!(
        (r.service_name.as_str(), r.executable_name.as_str()),
        ("nginx", "nginx")
    );
    let mut want = vec![
        "service.name=nginx".to_string(),
        "process.pid=8".into(),
        "process.executable.name=nginx".into(),
        "process.command_line=nginx: worker process".into(),
        "host.name=node-1".into(),
    ];
    want.extend(sdk());
    assert_eq!(attrs(&r), want);
}

#[test]
fn nothing_readable_but_alive_is_unknown_service() {
    let fake = FakeProc::new();
    fake.process(9, None, &[]);
    let mut e = fake.enricher();
    let r = e.resource(9);
    assert_eq!(r.service_name, "unknown_service");
    assert_eq!(r.executable_name, "");
    assert_eq!(e.len(), 1);
}

#[test]
fn vanished_process_gets_minimal_uncached_resource() {
    let fake = FakeProc::new();
    let mut e = Enricher::new(fake.root.clone(), String::new());
    let r = e.resource(4242);
    let mut want = vec![
        "service.name=unknown_service".to_string(),
        "process.pid=4242".into(),
    ];
    want.extend(sdk());
    assert_eq!(attrs(&r), want);
    assert!(e.is_empty());
}

#[test]
fn resource_attributes_env_var() {
    let env: &[u8] = b"OTEL_RESOURCE_ATTRIBUTES=team=a, service.name=pay%20ments ,x=y\0";
    assert_eq!(service_name_from_environ(env).as_deref(), Some("pay ments"));
    let both: &[u8] = b"OTEL_RESOURCE_ATTRIBUTES=service.name=x\0OTEL_SERVICE_NAME=y\0";
    assert_eq!(service_name_from_environ(both).as_deref(), Some("y"));
    let empty: &[u8] = b"OTEL_SERVICE_NAME=\0OTEL_RESOURCE_ATTRIBUTES=service.name=z\0";
    assert_eq!(service_name_from_environ(empty).as_deref(), Some("z"));
    assert_eq!(service_name_from_environ(b"MY_OTEL_SERVICE_NAME=q\0"), None);
    assert_eq!(service_name_from_environ(b""), None);
    assert_eq!(percent_decode("a%2Cb%zz%"), "a,b%zz%");
}

#[test]
fn command_line_joins_and_caps() {
    assert_eq!(command_line(b"a\0b c\0\0d\0").as_deref(), Some("a b c  d"));
    assert_eq!(command_line(b"\0"), None);
    assert_eq!(command_line(b""), None);
    let long = "é".repeat(MAX_COMMAND_LINE_BYTES);
    let got = command_line(long.as_bytes()).unwrap();
    assert_eq!(got.len(), MAX_COMMAND_LINE_BYTES);
    assert!(got.chars().all(|c| c == 'é'));
}

#[test]
fn cache_is_shared_then_forgotten() {
    let fake = FakeProc::new();
    fake.process(5, Some("/bin/one"), &[]);
    let mut e = fake.enricher();
    let a = e.resource(5);
    fake.process(5, Some("/bin/two"), &[]);
    assert!(
        Arc::ptr_eq(&a, &e.resource(5)),
        "second call is served from the cache"
    );
    e.forget(5);
    assert!(e.is_empty());
    assert_eq!(e.resource(5).executable_name, "two");
    e.forget(12345); // unknown pid: no-op
    assert_eq!(e.len(), 1);
}

#[test]
fn cache_evicts_oldest() {
    let fake = FakeProc::new();
    for pid in 1..=4 {
        fake.process(pid, Some(&format!("/bin/p{pid}")), &[]);
    }
    let mut e = fake.enricher().with_capacity(3);
    let first = e.resource(1);
    e.resource(2);
    e.resource(3);
    e.forget(2);
    e.resource(2); // re-inserted: now the newest
    e.resource(4); // evicts pid 1, the oldest
    assert_eq!(e.len(), 3);
    assert!(
        !Arc::ptr_eq(&first, &e.resource(1)),
        "pid 1 was evicted and read again"
    );
    // Reading pid 1 again evicted pid 3 (oldest of 3, 2, 4).
    let mut cached: Vec<u32> = e.cache.keys().copied().collect();
    cached.sort_unstable();
    assert_eq!(cached, [1, 2, 4]);
}

#[test]
fn host_name_reads_the_system_name() {
    let h = host_name();
    assert!(!h.is_empty());
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        assert_eq!(h, k.trim());
    }
}

#[test]
fn reads_the_real_proc_for_this_process() {
    let mut e = Enricher::new(PathBuf::from("/proc"), host_name());
    let me = std::process::id();
    let r = e.resource(me);
    assert_eq!(r.pid, me);
    assert!(
        r.executable_name.starts_with("otel_ebpf_receiver"),
        "{}",
        r.executable_name
    );
    // service.name depends on the test environment (OTEL_SERVICE_NAME may be set).
    assert!(!r.service_name.is_empty());
    assert_eq!(e.len(), 1);
}

#[test]
fn command_line_secrets_are_redacted_by_default() {
    let fake = FakeProc::new();
    fake.process(
        300,
        Some("/usr/bin/app"),
        &[(
            "cmdline",
            b"app\0--password=hunter2\0--user\0bob\0--token\0t0k\0https://u:pw@db/x?api_key=k&a=1\0",
        )],
    );
    let r = fake.enricher().resource(300);
    let line = attrs(&r)
        .into_iter()
        .find(|a| a.starts_with("process.command_line="))
        .unwrap();
    assert_eq!(
        line,
        "process.command_line=app --password=REDACTED --user bob --token REDACTED https://u:REDACTED@db/x?api_key=REDACTED&a=1"
    );
    assert!(!format!("{:?}", r.attributes).contains("hunter2"));
}

#[test]
fn full_command_line_is_opt_in_as_command_args() {
    let fake = FakeProc::new();
    fake.process(
        301,
        Some("/usr/bin/app"),
        &[("cmdline", b"app\0--password=hunter2\0")],
    );
    let r = fake.enricher().with_full_command_line(true).resource(301);
    let Some(AttrValue::StrArray(got)) = r.attributes.get(res::PROCESS_COMMAND_ARGS) else {
        panic!("no process.command_args: {:?}", r.attributes);
    };
    assert_eq!(got, &["app", "--password=hunter2"]);
    assert!(r.attributes.get(res::PROCESS_COMMAND_LINE).is_none());
}

/// A process of pod `web-7d9f8c6b5-x2x4q` (containerd, systemd driver) as the enricher sees it.
fn pod_process(fake: &FakeProc, pid: u32, environ: &[u8]) {
    let cgroup = format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_aaaa_4bbb_8ccc_0123456789ab.slice/cri-containerd-{ID}.scope\n"
    );
    fake.process(
        pid,
        Some("/usr/sbin/nginx"),
        &[("cgroup", cgroup.as_bytes()), ("environ", environ)],
    );
}

#[test]
fn pod_identity_is_added_and_process_service_name_wins() {
    use crate::enrich::kubernetes::{Kubernetes, test_pods};
    let fake = FakeProc::new();
    pod_process(&fake, 300, b"PATH=/bin\0");
    pod_process(&fake, 301, b"OTEL_SERVICE_NAME=edge\0");
    fake.process(
        302,
        Some("/usr/bin/curl"),
        &[("cgroup", b"0::/user.slice\n")],
    );
    let (k, mut w) = Kubernetes::test_watch("node-1");
    k.test_apply(&mut w, &test_pods::pod(&Default::default()));
    let mut e = fake.enricher().with_kubernetes(Some(k));
    let r = e.resource(300);
    assert_eq!(r.service_name, "web");
    let got = attrs(&r);
    for want in [
        "service.name=web",
        "service.namespace=shop",
        "service.version=1.27.3",
        "service.instance.id=shop.web-7d9f8c6b5-x2x4q.web",
        "k8s.namespace.name=shop",
        "k8s.pod.name=web-7d9f8c6b5-x2x4q",
        "k8s.node.name=node-1",
        "k8s.deployment.name=web",
        "k8s.container.name=web",
        "container.image.name=docker.io/library/nginx",
    ] {
        assert!(got.iter().any(|a| a == want), "{want} not in {got:?}");
    }
    assert_eq!(e.resource(301).service_name, "edge");
    assert!(attrs(&e.resource(301)).contains(&"k8s.pod.name=web-7d9f8c6b5-x2x4q".into()));
    let host = attrs(&e.resource(302));
    assert!(
        host.iter()
            .all(|a| !a.starts_with("k8s.") && !a.starts_with("service.namespace"))
    );
    assert!(e.in_scope(300) && e.in_scope(302));
}

#[test]
fn process_seen_before_its_pod_is_read_again_once_the_cache_moves() {
    use crate::enrich::kubernetes::{Kubernetes, test_pods};
    let fake = FakeProc::new();
    pod_process(&fake, 400, b"");
    let (k, mut w) = Kubernetes::test_watch("node-1");
    let mut e = fake.enricher().with_kubernetes(Some(k.clone()));
    let first = e.resource(400);
    assert_eq!(first.service_name, "nginx");
    // Same generation: the cached resource is reused.
    assert!(Arc::ptr_eq(&first, &e.resource(400)));
    k.test_apply(&mut w, &test_pods::pod(&Default::default()));
    assert_eq!(e.resource(400).service_name, "web");
    assert_eq!(
        k.stats()
            .pod_misses
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
