//! StatefulSets: rolled out when the StatefulSet controller has observed the latest spec,
//! the update reached every pod it is meant to reach (`updateRevision == currentRevision`,
//! or with a partition, `replicas - partition` updated pods) and every replica is ready.
//!
//! With `updateStrategy: OnDelete` the controller never replaces a pod by itself: the
//! rollout waits, and says so, until someone deletes the old pods (complete once every
//! pod is updated and ready); the progress deadline still holds.

use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use serde::{Deserialize, Serialize};

use super::Driver;
use crate::controller::slim::{
    PodTemplate, containers, identity_and_image_managers, image_managers,
};
use crate::engine::{ON_DELETE_NOTE, RolloutState, WorkloadKind, WorkloadView};

/// The StatefulSet driver.
pub struct StatefulSets;

impl Driver for StatefulSets {
    type Object = CachedStatefulSet;
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
    const POD_SPEC: &'static [&'static str] = &["spec", "template", "spec"];

    fn view(s: &CachedStatefulSet) -> WorkloadView {
        let spec = s.spec.as_ref();
        let status = s.status.clone().unwrap_or_default();
        // Kubernetes defaults spec.replicas to 1.
        let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
        let partition = strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .clamp(0, replicas);
        let updated = status.updated_replicas.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let same_revision =
            status.update_revision.is_some() && status.update_revision == status.current_revision;
        let updated_enough = if on_delete {
            updated >= replicas
        } else if partition > 0 {
            updated >= replicas - partition
        } else {
            same_revision
        };
        let rollout = if updated_enough && ready >= replicas {
            RolloutState::Complete
        } else {
            RolloutState::Progressing {
                note: on_delete.then(|| ON_DELETE_NOTE.to_owned()),
            }
        };
        // `availableReplicas` (Kubernetes 1.22 on); ready replicas before it.
        let available = status.available_replicas.unwrap_or(ready);
        WorkloadView {
            cluster: None,
            kind: WorkloadKind::StatefulSet,
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            name: s.metadata.name.clone().unwrap_or_default(),
            containers: containers(spec.map(|s| &s.template)),
            generation: s.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            rollout,
            available: available >= replicas,
            replicas: Some(replicas),
            image_managers: image_managers(&s.metadata),
        }
    }
}

/// A StatefulSet as cached: identity, replicas, update strategy, container images and
/// rollout status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedStatefulSet {
    /// Identity only.
    #[serde(default, deserialize_with = "identity_and_image_managers")]
    pub metadata: ObjectMeta,
    /// The desired state, as far as the view reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<StatefulSetSpec>,
    /// The StatefulSet controller's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatefulSetStatus>,
}

/// `spec`, as far as the view reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    /// `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `spec.updateStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// `spec.template`.
    #[serde(default)]
    pub template: PodTemplate,
}

/// `spec.updateStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `RollingUpdate` (the default) or `OnDelete`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `rollingUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// `spec.updateStrategy.rollingUpdate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RollingUpdate {
    /// Pods with an ordinal below it keep the old template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

/// `status`, as far as the view reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatus {
    /// `observedGeneration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `updatedReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// `readyReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// `availableReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// `currentRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// `updateRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
}

crate::controller::slim::cached_resource!(
    CachedStatefulSet,
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets"
);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn view(strategy: Value, status: Value) -> WorkloadView {
        let object: CachedStatefulSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop-prod", "generation": 4,
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "updateStrategy": strategy,
                     "template": {"spec": {"containers": [{"name": "db", "image": "db:2", "ports": [{"containerPort": 5432}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]},
            "status": status
        }))
        .expect("test objects are well-formed");
        StatefulSets::view(&object)
    }

    fn rolling() -> Value {
        json!({"type": "RollingUpdate"})
    }

    #[test]
    fn complete_when_every_pod_is_on_the_update_revision_and_ready() {
        let done = view(
            rolling(),
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                   "currentRevision": "db-7c9", "updateRevision": "db-7c9"}),
        );
        assert!(done.rolled_out() && done.available);
        assert_eq!(done.image_of("db"), Some("db:2"));
    }

    #[test]
    fn in_progress_while_revisions_differ_or_a_replica_is_not_ready() {
        let rolling_pods = view(
            rolling(),
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 2,
                   "currentRevision": "db-6b1", "updateRevision": "db-7c9"}),
        );
        assert_eq!(
            rolling_pods.rollout,
            RolloutState::Progressing { note: None }
        );
        let not_ready = view(
            rolling(),
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                   "currentRevision": "db-7c9", "updateRevision": "db-7c9"}),
        );
        assert!(!not_ready.rolled_out() && !not_ready.available);
        let unobserved = view(
            rolling(),
            json!({"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                   "currentRevision": "db-6b1", "updateRevision": "db-6b1"}),
        );
        assert!(!unobserved.observed() && !unobserved.rolled_out());
    }

    #[test]
    fn a_partition_completes_when_the_pods_above_it_are_updated() {
        let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
        let one_updated = view(
            strategy.clone(),
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
                   "currentRevision": "db-6b1", "updateRevision": "db-7c9"}),
        );
        assert!(
            one_updated.rolled_out(),
            "3 replicas - partition 2 = 1 pod to update"
        );
        let none_updated = view(
            strategy,
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 0,
                   "currentRevision": "db-6b1", "updateRevision": "db-7c9"}),
        );
        assert!(!none_updated.rolled_out());
    }

    #[test]
    fn on_delete_says_the_pods_change_only_when_deleted_until_they_have() {
        let waiting = view(
            json!({"type": "OnDelete"}),
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 0,
                   "currentRevision": "db-6b1", "updateRevision": "db-7c9"}),
        );
        assert_eq!(waiting.note(), Some(ON_DELETE_NOTE));
        assert!(!waiting.rolled_out());
        let replaced = view(
            json!({"type": "OnDelete"}),
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                   "currentRevision": "db-6b1", "updateRevision": "db-7c9"}),
        );
        assert!(
            replaced.rolled_out(),
            "OnDelete never moves currentRevision: every pod updated and ready is complete"
        );
    }
}
