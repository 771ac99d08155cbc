//! The pieces every cached type is made of (each workload driver's, the Release's):
//! identity-only metadata and a pod template reduced to its containers' names and images,
//! both decoded without allocating what they skip.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::ContainerImage;

/// A pod template, its containers only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodTemplate {
    /// `template.spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpec>,
}

/// A pod spec, its containers only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodSpec {
    /// Name and image of each container, in order.
    #[serde(default)]
    pub containers: Vec<Container>,
}

/// A container's name and image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The containers of a pod template, as the engine reads them.
pub fn containers(template: Option<&PodTemplate>) -> Vec<ContainerImage> {
    template
        .and_then(|t| t.spec.as_ref())
        .map(|pod| {
            pod.containers
                .iter()
                .map(|c| ContainerImage {
                    container: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The identity fields of `metadata`; the rest (managed fields, labels, annotations) is
/// skipped while decoding.
pub fn identity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Identity {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        generation: Option<i64>,
        resource_version: Option<String>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
    }
    let identity = Identity::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: identity.name,
        namespace: identity.namespace,
        uid: identity.uid,
        generation: identity.generation,
        resource_version: identity.resource_version,
        creation_timestamp: identity.creation_timestamp,
        deletion_timestamp: identity.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

/// Makes a cached type a namespaced Kubernetes resource (group, version, kind, plural)
/// whose `metadata` field is its metadata, so that kube can watch and cache it.
macro_rules! cached_resource {
    ($type:ty, $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        impl k8s_openapi::Resource for $type {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $type {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use cached_resource;
