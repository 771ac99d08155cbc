//! The pieces every cached type is made of (each workload driver's, the Release's):
//! identity-only metadata and a pod template reduced to its containers' names and images,
//! both decoded without allocating what they skip.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta, Time};
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

/// [`identity`], plus the field managers other than Greenlight that set a container image
/// (kept as `managedFields` entries with only their manager): who Greenlight fights when
/// drift comes back again and again. The rest of `managedFields` is skipped while decoding.
pub fn identity_and_image_managers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct WithManagers {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        generation: Option<i64>,
        resource_version: Option<String>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
        #[serde(default)]
        managed_fields: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        manager: Option<String>,
        #[serde(default, rename = "fieldsV1")]
        sets_image: SetsImage,
    }
    let meta = WithManagers::deserialize(deserializer)?;
    let mut managers: Vec<String> = meta
        .managed_fields
        .into_iter()
        .filter(|e| e.sets_image.0)
        .filter_map(|e| e.manager)
        .filter(|m| m != crate::controller::actions::FIELD_MANAGER)
        .collect();
    managers.sort();
    managers.dedup();
    Ok(ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        generation: meta.generation,
        resource_version: meta.resource_version,
        creation_timestamp: meta.creation_timestamp,
        deletion_timestamp: meta.deletion_timestamp,
        managed_fields: (!managers.is_empty()).then(|| {
            managers
                .into_iter()
                .map(|manager| ManagedFieldsEntry {
                    manager: Some(manager),
                    ..ManagedFieldsEntry::default()
                })
                .collect()
        }),
        ..ObjectMeta::default()
    })
}

/// The managers [`identity_and_image_managers`] kept.
pub fn image_managers(meta: &ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|e| e.manager.clone())
        .collect()
}

/// Whether a `fieldsV1` tree owns an `f:image` anywhere, decoded without keeping it.
#[derive(Default)]
struct SetsImage(bool);

impl<'de> Deserialize<'de> for SetsImage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Walk;
        impl<'de> serde::de::Visitor<'de> for Walk {
            type Value = SetsImage;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a fieldsV1 tree")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SetsImage, A::Error> {
                let mut found = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    found |= key == "f:image";
                    found |= map.next_value::<SetsImage>()?.0;
                }
                Ok(SetsImage(found))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SetsImage, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(SetsImage(false))
            }
            fn visit_unit<E>(self) -> Result<SetsImage, E> {
                Ok(SetsImage(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<SetsImage, E> {
                Ok(SetsImage(false))
            }
            fn visit_str<E>(self, _: &str) -> Result<SetsImage, E> {
                Ok(SetsImage(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<SetsImage, E> {
                Ok(SetsImage(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<SetsImage, E> {
                Ok(SetsImage(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<SetsImage, E> {
                Ok(SetsImage(false))
            }
        }
        deserializer.deserialize_any(Walk)
    }
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
