//! Fuzz target: Kubernetes enrichment's text parsers and identity rules.
//!
//! Stage: enrich. Input: arbitrary bytes (when UTF-8) used as a `/proc/PID/cgroup` file, as a
//! Downward API `labels`/`annotations` file, as an image reference and as owner names.
//! Checks: nothing panics; a container id found is 64 hex digits and appears in the input; a
//! pod UID found has the 36-character form; suffix rules return a prefix of their input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_ebpf_receiver::enrich::cgroup::parse_cgroup;
use otel_ebpf_receiver::enrich::kubernetes::identity::{
    cronjob_of_job, deployment_of_replicaset, split_image,
};
use otel_ebpf_receiver::enrich::kubernetes::sidecar::parse_downward_map;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ids = parse_cgroup(text);
    if let Some(id) = &ids.container_id {
        assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(text.contains(id.as_str()));
    }
    if let Some(uid) = &ids.pod_uid {
        assert_eq!(uid.len(), 36);
    }
    let _ = parse_downward_map(text);
    let (name, tag) = split_image(text);
    for part in [name, tag].into_iter().flatten() {
        assert!(text.contains(part));
    }
    for base in [deployment_of_replicaset(text), cronjob_of_job(text)]
        .into_iter()
        .flatten()
    {
        assert!(text.starts_with(base));
    }
});
