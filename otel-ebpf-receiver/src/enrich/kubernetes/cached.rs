//! The pod as cached: a Pod reduced to the fields the identity rules use, deserialized straight
//! from the API's JSON.
//!
//! Stage: enrich (cache type). Input: Pod JSON from list/watch responses (serde ignores every
//! field not declared here: spec, conditions, IPs, volumes, …). Output: [`CachedPod`], a `kube`
//! [`Resource`] of kind `Pod` (core/v1, namespaced) that the runtime watcher and reflector
//! handle like `k8s_openapi`'s `Pod`. Its metadata is then reduced by
//! [`super::identity::strip`] before the reflector stores it.
//!
//! Why our own type instead of `k8s_openapi::api::core::v1::Pod`: that struct is 2,176 bytes
//! inline (1,416 of them the `PodSpec`, kept even when `None`) and each container status 752
//! bytes, so a stripped `Pod` still costs ~4.6 KB per pod in the store; this type with its
//! labels, annotations and owner moved out of `ObjectMeta`'s `BTreeMap`s ~1.3 KB (the
//! `pod_cache` benchmark; figures in docs/kubernetes.md).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use std::borrow::Cow;

/// A pod: metadata and the container statuses.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CachedPod {
    /// `metadata` (reduced by [`super::identity::strip`] before caching).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `status` (only the container status lists).
    #[serde(default)]
    pub status: Option<CachedStatus>,
    /// Labels kept by [`super::identity::strip`], moved out of `metadata` (a `BTreeMap` costs
    /// a ~540-byte node even for one entry).
    #[serde(skip)]
    pub labels: Vec<(String, String)>,
    /// Annotations kept by [`super::identity::strip`], moved out of `metadata`.
    #[serde(skip)]
    pub annotations: Vec<(String, String)>,
    /// The controlling owner's (kind, name), moved out of `metadata` by the strip.
    #[serde(skip)]
    pub owner: Option<(String, String)>,
}

impl CachedPod {
    /// Label `key` (kept or still in `metadata`).
    pub fn label(&self, key: &str) -> Option<&str> {
        let kept = self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        kept.or_else(|| self.metadata.labels.as_ref()?.get(key))
            .map(String::as_str)
    }

    /// Every annotation (kept, then any still in `metadata`).
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        let kept = self
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let meta = self.metadata.annotations.iter().flatten();
        kept.chain(meta.map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The controlling owner's (kind, name): the moved one, else the `ownerReferences` entry
    /// with `controller: true`, else the first.
    pub fn controller(&self) -> Option<(&str, &str)> {
        if let Some((k, n)) = &self.owner {
            return Some((k, n));
        }
        let refs = self.metadata.owner_references.as_deref()?;
        let o = refs
            .iter()
            .find(|o| o.controller == Some(true))
            .or(refs.first())?;
        Some((&o.kind, &o.name))
    }
}

/// `status.{containerStatuses,initContainerStatuses,ephemeralContainerStatuses}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedStatus {
    /// `status.containerStatuses`.
    #[serde(default)]
    pub container_statuses: Vec<CachedContainer>,
    /// `status.initContainerStatuses`.
    #[serde(default)]
    pub init_container_statuses: Vec<CachedContainer>,
    /// `status.ephemeralContainerStatuses`.
    #[serde(default)]
    pub ephemeral_container_statuses: Vec<CachedContainer>,
}

/// One container status: `name`, `containerID` (`<runtime>://<64 hex>`, absent until the
/// container was created) and `image` (as the runtime reports it).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CachedContainer {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `containerID`.
    #[serde(default, rename = "containerID")]
    pub container_id: Option<String>,
    /// `image`.
    #[serde(default)]
    pub image: String,
}

impl CachedStatus {
    /// Every container status (regular, init, ephemeral).
    pub fn all(&self) -> impl Iterator<Item = &CachedContainer> {
        self.container_statuses
            .iter()
            .chain(&self.init_container_statuses)
            .chain(&self.ephemeral_container_statuses)
    }
}

impl Resource for CachedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_url_as_the_k8s_openapi_pod() {
        use k8s_openapi::api::core::v1::Pod;
        assert_eq!(
            CachedPod::url_path(&(), Some("ns")),
            <Pod as Resource>::url_path(&(), Some("ns"))
        );
        assert_eq!(CachedPod::url_path(&(), None), "/api/v1/pods");
        assert_eq!(CachedPod::api_version(&()), "v1");
    }
}
