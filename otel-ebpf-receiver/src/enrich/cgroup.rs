//! Container and pod ids from a process's cgroup path (pure parsing, no IO).
//!
//! Stage: enrich (helper). Input: the text of `/proc/PID/cgroup` (cgroup v1: one
//! `hierarchy-id:controllers:path` line per hierarchy; v2: one `0::path` line). Output:
//! [`CgroupIds`]: the 64-hex container id and the Kubernetes pod UID when the path names them.
//!
//! Layouts recognised (the deepest matching path segment wins):
//! - systemd cgroup driver: `…/kubepods-<qos>-pod<uid_with_underscores>.slice/` then
//!   `cri-containerd-<id>.scope` (containerd), `crio-<id>.scope` (CRI-O), `docker-<id>.scope`
//!   (Docker / cri-dockerd), `libpod-<id>.scope` (Podman), `containerd-<id>.scope`;
//! - cgroupfs driver: `…/kubepods/<qos>/pod<uid>/<id>` and `/docker/<id>`;
//! - containerd's cgroup v1 systemd form `…/kubepods-<qos>-pod<uid>.slice:cri-containerd:<id>`.
//!
//! Runtime monitor scopes (`crio-conmon-…`, `libpod-conmon-…`) are not containers. Limits: a
//! container id is exactly 64 hex digits (every runtime above); a pod UID is a 36-character
//! RFC 4122 form (`_` of systemd slice names read as `-`). Nothing else is inferred.

/// Ids found in one `/proc/PID/cgroup` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIds {
    /// 64 lowercase/uppercase hex digits as written by the runtime (no `containerd://` prefix).
    pub container_id: Option<String>,
    /// Kubernetes pod UID (`metadata.uid`, 36 chars with dashes), from the `pod<uid>` segment.
    pub pod_uid: Option<String>,
}

/// The container id and pod UID named by a cgroup file's paths; the first line (hierarchy)
/// that names a container id wins, and the pod UID is taken from that same line when present.
pub fn parse_cgroup(text: &str) -> CgroupIds {
    let mut pod_only = None;
    for line in text.lines() {
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        let mut ids = CgroupIds::default();
        for seg in path.rsplit('/') {
            for part in seg.rsplit(':') {
                if ids.container_id.is_none() {
                    ids.container_id = container_id_from_segment(part).map(str::to_string);
                }
                if ids.pod_uid.is_none() {
                    ids.pod_uid = pod_uid_from_segment(part);
                }
            }
        }
        if ids.container_id.is_some() {
            return ids;
        }
        if pod_only.is_none() && ids.pod_uid.is_some() {
            pod_only = Some(ids);
        }
    }
    pod_only.unwrap_or_default()
}

/// The container id in a `/proc/PID/cgroup` text (see [`parse_cgroup`]).
pub fn container_id_from_cgroup(text: &str) -> Option<String> {
    parse_cgroup(text).container_id
}

fn container_id_from_segment(seg: &str) -> Option<&str> {
    if seg.contains("conmon") {
        return None;
    }
    let s = seg.strip_suffix(".scope").unwrap_or(seg);
    let s = [
        "docker-",
        "cri-containerd-",
        "containerd-",
        "crio-",
        "libpod-",
    ]
    .iter()
    .find_map(|p| s.strip_prefix(p))
    .unwrap_or(s);
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid_from_segment(seg: &str) -> Option<String> {
    let s = seg.strip_suffix(".slice").unwrap_or(seg);
    let at = s.rfind("pod")?;
    let before = &s[..at];
    if !(before.is_empty() || before.starts_with("kubepods") && before.ends_with('-')) {
        return None;
    }
    let uid = s[at + 3..].replace('_', "-");
    is_uid(&uid).then_some(uid)
}

/// 8-4-4-4-12 hex digits separated by `-`.
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "1b2c3d4e-aaaa-4bbb-8ccc-0123456789ab";
    const UID_: &str = "1b2c3d4e_aaaa_4bbb_8ccc_0123456789ab";

    #[test]
    fn container_ids_from_cgroup_layouts() {
        let cases = [
            (format!("0::/system.slice/docker-{ID}.scope"), Some(ID)),
            (
                format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}"),
                Some(ID),
            ),
            (
                format!("0::/kubepods/burstable/pod1b2c-33/cri-containerd-{ID}.scope"),
                Some(ID),
            ),
            (
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/\
                     kubepods-besteffort-pod1b2c_33.slice/crio-{ID}.scope"
                ),
                Some(ID),
            ),
            (format!("0::/machine.slice/libpod-{ID}.scope"), Some(ID)),
            (
                format!(
                    "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
                ),
                Some(ID),
            ),
            (
                format!("0::/kubepods/besteffort/pod0f1e2d3c-aaaa-bbbb/{ID}"),
                Some(ID),
            ),
            (format!("0::/machine.slice/libpod-conmon-{ID}.scope"), None),
            (
                "0::/user.slice/user-1000.slice/session-2.scope".to_string(),
                None,
            ),
            ("0::/system.slice/docker.service".to_string(), None),
            (format!("0::/docker-{}.scope", &ID[1..]), None),
            ("garbage".to_string(), None),
        ];
        for (text, want) in cases {
            assert_eq!(container_id_from_cgroup(&text).as_deref(), want, "{text}");
        }
    }

    /// Paths as kubelet + each runtime + each cgroup driver write them.
    #[test]
    fn kubernetes_layouts_give_container_and_pod() {
        let cases = [
            // cgroup v2, systemd driver, containerd.
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            // Guaranteed QoS (no QoS slice), CRI-O.
            format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope"),
            // Burstable, cri-dockerd.
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{ID}.scope"
            ),
            // cgroup v2, cgroupfs driver (containerd, CRI-O and Docker all use the bare id).
            format!("0::/kubepods/burstable/pod{UID}/{ID}"),
            format!("0::/kubepods/pod{UID}/{ID}"),
            // cgroup v1, several hierarchies; the first with an id wins.
            format!(
                "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n11:memory:/kubepods/besteffort/pod{UID}/{ID}\n0::/"
            ),
            // cgroup v1, containerd with the systemd driver.
            format!(
                "4:cpu,cpuacct:/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{ID}"
            ),
            // A process in a nested cgroup of its container.
            format!("0::/kubepods/besteffort/pod{UID}/{ID}/app"),
        ];
        for text in cases {
            let ids = parse_cgroup(&text);
            assert_eq!(ids.container_id.as_deref(), Some(ID), "{text}");
            assert_eq!(ids.pod_uid.as_deref(), Some(UID), "{text}");
        }
    }

    #[test]
    fn pod_without_container_and_host_processes() {
        // The pod's cgroup itself (e.g. a process moved there by hand): pod only.
        let ids = parse_cgroup(&format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"
        ));
        assert_eq!(ids.container_id, None);
        assert_eq!(ids.pod_uid.as_deref(), Some(UID));
        for text in [
            "0::/init.scope",
            "0::/kubepods.slice/kubepods-besteffort.slice",
            "0::/system.slice/kubelet.service",
            "0::/podman.slice/notapod",
            "0::/kubepods/besteffort/pod1234",
            "",
        ] {
            assert_eq!(parse_cgroup(text), CgroupIds::default(), "{text}");
        }
        // A Docker container outside Kubernetes: container id, no pod.
        let ids = parse_cgroup(&format!("0::/system.slice/docker-{ID}.scope"));
        assert_eq!((ids.container_id.as_deref(), ids.pod_uid), (Some(ID), None));
    }
}
