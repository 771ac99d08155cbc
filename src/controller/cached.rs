//! What the controller caches of a target Deployment: only the fields the engine reads,
//! decoded straight from the watch. Everything else a real API server sends (managed
//! fields, annotations, the rest of the pod template) is skipped while decoding and never
//! allocated: the full `k8s_openapi` Deployment kept about 6 KiB per object in the store
//! (32 MB at 5,000 Deployments, heaptrack), most of it empty fields of `PodSpec`.

use k8s_openapi::{
    NamespaceResourceScope,
    api::apps::v1::DeploymentStatus,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use serde::{Deserialize, Deserializer, Serialize};

/// A Deployment as cached: identity, replicas, container images and rollout status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedDeployment {
    /// Identity only: name, namespace, uid, generation, resourceVersion, timestamps.
    #[serde(default, deserialize_with = "identity")]
    pub metadata: ObjectMeta,
    /// The desired state, as far as the engine reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedDeploymentSpec>,
    /// The Deployment controller's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}

/// `spec.replicas` and the pod template's containers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedDeploymentSpec {
    /// `spec.replicas` (Kubernetes defaults it to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `spec.template`.
    #[serde(default)]
    pub template: CachedPodTemplate,
}

/// `spec.template`, its containers only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedPodTemplate {
    /// `spec.template.spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedPodSpec>,
}

/// `spec.template.spec`, its containers only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedPodSpec {
    /// Name and image of each container, in order.
    #[serde(default)]
    pub containers: Vec<CachedContainer>,
}

/// A container's name and image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedContainer {
    /// `name`.
    pub name: String,
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The identity fields of `metadata`; the rest (managed fields, labels, annotations) is
/// skipped while decoding.
fn identity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
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

impl k8s_openapi::Resource for CachedDeployment {
    const API_VERSION: &'static str = "apps/v1";
    const GROUP: &'static str = "apps";
    const KIND: &'static str = "Deployment";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "deployments";
    type Scope = NamespaceResourceScope;
}

impl k8s_openapi::Metadata for CachedDeployment {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_real_deployment_decodes_to_what_the_engine_reads() {
        let d: CachedDeployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "generation": 3, "resourceVersion": "42",
                         "labels": {"app": "api"}, "annotations": {"big": "x"},
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                        {"name": "api", "image": "api:1", "env": [{"name": "A", "value": "b"}]},
                        {"name": "proxy", "image": "envoy:1.30", "ports": [{"containerPort": 8080}]}]}}},
            "status": {"observedGeneration": 3, "replicas": 2}
        }))
        .unwrap();
        assert_eq!(
            d.metadata,
            ObjectMeta {
                name: Some("api".into()),
                namespace: Some("shop".into()),
                generation: Some(3),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            }
        );
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.template.spec.unwrap().containers,
            [
                CachedContainer {
                    name: "api".into(),
                    image: Some("api:1".into())
                },
                CachedContainer {
                    name: "proxy".into(),
                    image: Some("envoy:1.30".into())
                },
            ]
        );
        assert_eq!(d.status.unwrap().observed_generation, Some(3));
    }
}
