//! The `receiver.kubernetes` section: pod workload identity on spans and metrics.
//!
//! Stage: configuration, read at start-up. Input: YAML under `receiver.kubernetes`. Output:
//! [`KubernetesConfig`], read by [`crate::enrich::kubernetes::start`].
//! Limits: `enabled` accepts `auto`, `true` or `false` (YAML booleans or those strings).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Kubernetes enrichment (`receiver.kubernetes:`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// `auto` (default): on in a pod (`KUBERNETES_SERVICE_HOST`), with `KUBECONFIG` set, or with
    /// the sidecar Downward API variables; `true`: on, and a missing API configuration is a
    /// start-up error; `false`: off.
    pub enabled: KubernetesEnabled,
}

/// `receiver.kubernetes.enabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KubernetesEnabled {
    /// On when a cluster is detected.
    #[default]
    Auto,
    /// Always on (error without an API).
    True,
    /// Off.
    False,
}

impl Serialize for KubernetesEnabled {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::True => s.serialize_bool(true),
            Self::False => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for KubernetesEnabled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Self::True),
            Raw::Bool(false) => Ok(Self::False),
            Raw::Str(s) => match s.as_str() {
                "auto" => Ok(Self::Auto),
                "true" => Ok(Self::True),
                "false" => Ok(Self::False),
                other => Err(serde::de::Error::custom(format!(
                    "expected auto, true or false, got {other:?}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, KubernetesEnabled};

    #[test]
    fn enabled_values() {
        let cases = [
            ("auto", KubernetesEnabled::Auto),
            ("true", KubernetesEnabled::True),
            ("false", KubernetesEnabled::False),
            ("\"true\"", KubernetesEnabled::True),
        ];
        for (v, want) in cases {
            let c = Config::from_yaml(
                &format!("receiver:\n  kubernetes:\n    enabled: {v}\n"),
                "t",
            )
            .unwrap();
            assert_eq!(c.receiver.kubernetes.enabled, want, "{v}");
        }
        let err = Config::from_yaml("receiver:\n  kubernetes:\n    enabled: maybe\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("receiver.kubernetes.enabled"), "{err}");
        let err = Config::from_yaml("receiver:\n  kubernetes:\n    peer: true\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("receiver.kubernetes"), "{err}");
        assert_eq!(
            Config::builtin().receiver.kubernetes.enabled,
            KubernetesEnabled::Auto
        );
    }
}
