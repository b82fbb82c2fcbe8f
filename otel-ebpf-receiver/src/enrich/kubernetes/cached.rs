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
//! bytes, so a stripped `Pod` still costs ~4.6 KB per pod in the store; this type ~1 KB
//! (figures in docs/kubernetes.md).

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
