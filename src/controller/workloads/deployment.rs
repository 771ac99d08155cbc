//! Deployments: rolled out when the Deployment controller has observed the latest spec,
//! every replica is updated and available, and no old replica remains; failed when it
//! reports `ProgressDeadlineExceeded`.
//!
//! The cache holds only the fields read here, decoded straight from the watch. Everything
//! else a real API server sends (managed fields, annotations, the rest of the pod
//! template) is skipped while decoding and never allocated: the full `k8s_openapi`
//! Deployment kept about 6 KiB per object in the store (32 MB at 5,000 Deployments,
//! heaptrack), most of it empty fields of `PodSpec`.

use k8s_openapi::{
    NamespaceResourceScope, api::apps::v1::DeploymentStatus,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::{Deserialize, Serialize};

use super::Driver;
use crate::controller::slim::{
    PodTemplate, containers, identity_and_image_managers, image_managers,
};
use crate::engine::{RolloutState, WorkloadKind, WorkloadView};

/// The Deployment driver.
pub struct Deployments;

impl Driver for Deployments {
    type Object = CachedDeployment;
    const KIND: WorkloadKind = WorkloadKind::Deployment;
    const POD_SPEC: &'static [&'static str] = &["spec", "template", "spec"];

    fn view(d: &CachedDeployment) -> WorkloadView {
        let spec = d.spec.as_ref();
        let status = d.status.as_ref();
        let generation = d.metadata.generation.unwrap_or(0);
        // Kubernetes defaults spec.replicas to 1.
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
        let count =
            |field: fn(&DeploymentStatus) -> Option<i32>| status.and_then(field).unwrap_or(0);
        let updated = count(|s| s.updated_replicas);
        let available = count(|s| s.available_replicas);
        // Old pods still around count in status.replicas until they are gone.
        let total = count(|s| s.replicas);
        let deadline_exceeded = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            });
        let rollout = if updated >= replicas && available >= replicas && total <= replicas {
            RolloutState::Complete
        } else if deadline_exceeded {
            RolloutState::Failed {
                reason: "exceeded its progress deadline".into(),
            }
        } else {
            RolloutState::Progressing { note: None }
        };
        WorkloadView {
            cluster: None,
            kind: WorkloadKind::Deployment,
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            containers: containers(spec.map(|s| &s.template)),
            generation,
            observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
            rollout,
            available: available >= replicas,
            replicas: Some(replicas),
            image_managers: image_managers(&d.metadata),
        }
    }

    fn trim(d: &mut CachedDeployment) {
        if let Some(status) = d.status.as_mut()
            && let Some(conditions) = status.conditions.as_mut()
        {
            conditions.retain(|c| c.type_ == "Progressing");
        }
    }
}

/// A Deployment as cached: identity, replicas, container images and rollout status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedDeployment {
    /// Identity only: name, namespace, uid, generation, resourceVersion, timestamps.
    #[serde(default, deserialize_with = "identity_and_image_managers")]
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
    pub template: PodTemplate,
}

crate::controller::slim::cached_resource!(
    CachedDeployment,
    "apps",
    "v1",
    "Deployment",
    "deployments"
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(status: serde_json::Value) -> CachedDeployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop-prod", "generation": 7, "resourceVersion": "42",
                         "labels": {"app": "api"},
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                        {"name": "api", "image": "registry.example.com/shop/api:1.4.2",
                         "env": [{"name": "A", "value": "b"}]},
                        {"name": "sidecar", "image": "envoy:1.30", "ports": [{"containerPort": 8080}]}]}}},
            "status": status
        }))
        .expect("test objects are well-formed")
    }

    #[test]
    fn a_real_deployment_decodes_to_its_identity_and_images_only() {
        let d = deployment(json!({"observedGeneration": 7, "replicas": 3}));
        assert_eq!(
            d.metadata,
            ObjectMeta {
                name: Some("api".into()),
                namespace: Some("shop-prod".into()),
                generation: Some(7),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            }
        );
        let view = Deployments::view(&d);
        assert_eq!(
            view.image_of("api"),
            Some("registry.example.com/shop/api:1.4.2")
        );
        assert_eq!(view.image_of("sidecar"), Some("envoy:1.30"));
        assert_eq!(view.containers.len(), 2);
    }

    #[test]
    fn the_other_managers_of_an_image_are_kept_and_nothing_else_of_managed_fields() {
        let image = |container: &str| {
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                format!("k:{{\"name\":\"{container}\"}}"): {".": {}, "f:image": {}}}}}}})
        };
        let d: CachedDeployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop-prod", "generation": 7,
                         "managedFields": [
                             {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                             {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": image("api")},
                             {"manager": "greenlight", "operation": "Apply", "fieldsV1": image("api")},
                             {"manager": "argocd-controller", "operation": "Update", "fieldsV1": image("sidecar")}
                         ]},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "api", "image": "registry.example.com/shop/api:1.4.2"}]}}}
        }))
        .unwrap();
        assert_eq!(
            Deployments::view(&d).image_managers,
            ["argocd-controller"],
            "once, without Greenlight, and not kubectl (it set replicas only)"
        );
        let entry = &d.metadata.managed_fields.as_ref().unwrap()[0];
        assert_eq!(entry.fields_v1, None, "the fields themselves are not kept");
    }

    #[test]
    fn a_finished_rollout_is_seen_as_rolled_out() {
        let d = Deployments::view(&deployment(
            json!({"observedGeneration": 7, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        ));
        assert!(d.rolled_out() && d.available);
    }

    #[test]
    fn a_rollout_in_progress_or_not_yet_observed_is_not_done() {
        let stale = Deployments::view(&deployment(
            json!({"observedGeneration": 6, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        ));
        assert!(
            !stale.rolled_out(),
            "the controller has not seen generation 7 yet"
        );
        let surging = Deployments::view(&deployment(
            json!({"observedGeneration": 7, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
        ));
        assert!(!surging.rolled_out(), "an old pod is still there");
        assert_eq!(surging.rollout, RolloutState::Progressing { note: None });
    }

    #[test]
    fn a_progress_deadline_exceeded_fails_the_observed_rollout_only() {
        let stuck = json!({"observedGeneration": 7, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        let view = Deployments::view(&deployment(stuck.clone()));
        assert_eq!(view.failure(), Some("exceeded its progress deadline"));
        let mut older = stuck;
        older["observedGeneration"] = json!(6);
        let view = Deployments::view(&deployment(older));
        assert_eq!(
            view.failure(),
            None,
            "a verdict on generation 6 says nothing of 7"
        );
    }

    #[test]
    fn replicas_default_to_one_as_in_kubernetes() {
        let mut d = deployment(
            json!({"observedGeneration": 7, "availableReplicas": 1, "updatedReplicas": 1, "replicas": 1}),
        );
        d.spec.as_mut().unwrap().replicas = None;
        assert!(Deployments::view(&d).rolled_out());
    }

    #[test]
    fn trimming_keeps_what_the_view_reads() {
        let mut d = deployment(
            json!({"observedGeneration": 7, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Available", "status": "True"},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
        );
        let before = Deployments::view(&d);
        Deployments::trim(&mut d);
        assert_eq!(Deployments::view(&d), before);
        assert_eq!(
            d.status.unwrap().conditions.unwrap().len(),
            1,
            "only Progressing is read"
        );
    }
}
