//! Sidecar mode: this pod's identity from the Downward API (no API server, no RBAC).
//!
//! Stage: enrich (start-up). Inputs: the environment variables `K8S_POD_NAME`,
//! `K8S_NAMESPACE_NAME`, `K8S_POD_UID` (required, from `metadata.name`, `metadata.namespace`,
//! `metadata.uid`) and `K8S_NODE_NAME` (`spec.nodeName`); the files `labels` and `annotations`
//! of a downward API volume mounted at [`PODINFO_DIR`] (optional: without them `service.name`
//! falls back to the pod name). Output: a [`CachedPod`] with those fields, fed to the same identity
//! rules as watched pods. Processes are matched to it by the pod UID of their cgroup.
//!
//! Limits: the Downward API does not expose owners nor container ids, so no `k8s.deployment.name`
//! (etc.) and no `k8s.container.name` / image in this mode (set them with
//! `resource.opentelemetry.io/` annotations if needed). The files' format is kubelet's
//! `key="value"` lines with Go string escapes; malformed lines are skipped.

use super::CachedPod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::Path;

use super::Env;

/// Where the downward API volume with `labels` and `annotations` is mounted.
pub const PODINFO_DIR: &str = "/etc/podinfo";
/// Downward API variable with the pod's UID; its presence selects sidecar mode.
pub const ENV_POD_UID: &str = "K8S_POD_UID";

/// This pod, when `K8S_POD_NAME`, `K8S_NAMESPACE_NAME` and `K8S_POD_UID` are all set.
pub fn own_pod(env: Env, podinfo: &Path) -> Option<CachedPod> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let (name, ns, uid) = (
        var("K8S_POD_NAME")?,
        var("K8S_NAMESPACE_NAME")?,
        var(ENV_POD_UID)?,
    );
    let read = |f: &str| {
        std::fs::read_to_string(podinfo.join(f))
            .ok()
            .map(|t| parse_downward_map(&t))
            .filter(|m| !m.is_empty())
    };
    Some(CachedPod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns),
            uid: Some(uid),
            labels: read("labels"),
            annotations: read("annotations"),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Parses kubelet's downward API map format: one `key="value"` per line, the value quoted with
/// Go's `strconv.Quote` escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\xNN`, `\uNNNN`).
pub fn parse_downward_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once('=')?;
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.to_string(), unquote(v)?))
        })
        .collect()
}

fn unquote(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'x' => {
                let h: String = it.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&h, 16).ok()?));
            }
            'u' => {
                let h: String = it.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_map_format() {
        let text = "app.kubernetes.io/name=\"cart\"\nresource.opentelemetry.io/x=\"a \\\"q\\\" \\\\ \\u00e9\"\nbroken\nnoquote=x\nbad=\"\\z\"\n";
        let m = parse_downward_map(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m["app.kubernetes.io/name"], "cart");
        assert_eq!(m["resource.opentelemetry.io/x"], "a \"q\" \\ é");
    }

    #[test]
    fn own_pod_needs_the_three_variables() {
        let dir = std::env::temp_dir().join(format!("otel-ebpf-podinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("labels"), "app.kubernetes.io/name=\"cart\"\n").unwrap();
        let vars = [
            ("K8S_POD_NAME", "cart-0"),
            ("K8S_NAMESPACE_NAME", "shop"),
            ("K8S_POD_UID", "1b2c3d4e-aaaa-4bbb-8ccc-0123456789ab"),
        ];
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let p = own_pod(&env, &dir).unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("cart-0"));
        assert_eq!(p.metadata.labels.unwrap()["app.kubernetes.io/name"], "cart");
        assert_eq!(p.metadata.annotations, None);
        let partial = |k: &str| (k != "K8S_POD_UID").then(|| env(k)).flatten();
        assert!(own_pod(&partial, &dir).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
