//! DaemonSets: rolled out when the DaemonSet controller has observed the latest spec and
//! every node that should run a pod runs an updated, available one
//! (`updatedNumberScheduled == numberAvailable == desiredNumberScheduled`). With
//! `updateStrategy: OnDelete` the pods change only when deleted, as for StatefulSets.

use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use serde::{Deserialize, Serialize};

use super::{Driver, statefulset::UpdateStrategy};
use crate::controller::slim::{
    PodTemplate, containers, identity_and_image_managers, image_managers,
};
use crate::engine::{ON_DELETE_NOTE, RolloutState, WorkloadKind, WorkloadView};

/// The DaemonSet driver.
pub struct DaemonSets;

impl Driver for DaemonSets {
    type Object = CachedDaemonSet;
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;
    const POD_SPEC: &'static [&'static str] = &["spec", "template", "spec"];

    fn view(d: &CachedDaemonSet) -> WorkloadView {
        let spec = d.spec.as_ref();
        let status = d.status.clone().unwrap_or_default();
        let on_delete = spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            == Some("OnDelete");
        let desired = status.desired_number_scheduled.unwrap_or(0);
        let updated = status.updated_number_scheduled.unwrap_or(0);
        let available = status.number_available.unwrap_or(0);
        let rollout = if updated >= desired && available >= desired {
            RolloutState::Complete
        } else {
            RolloutState::Progressing {
                note: on_delete.then(|| ON_DELETE_NOTE.to_owned()),
            }
        };
        WorkloadView {
            cluster: None,
            kind: WorkloadKind::DaemonSet,
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            containers: containers(spec.map(|s| &s.template)),
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            rollout,
            available: available >= desired,
            replicas: None,
            image_managers: image_managers(&d.metadata),
        }
    }
}

/// A DaemonSet as cached: identity, update strategy, container images and rollout status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedDaemonSet {
    /// Identity only.
    #[serde(default, deserialize_with = "identity_and_image_managers")]
    pub metadata: ObjectMeta,
    /// The desired state, as far as the view reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<DaemonSetSpec>,
    /// The DaemonSet controller's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DaemonSetStatus>,
}

/// `spec`, as far as the view reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpec {
    /// `spec.updateStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// `spec.template`.
    #[serde(default)]
    pub template: PodTemplate,
}

/// `status`, as far as the view reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    /// `observedGeneration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `desiredNumberScheduled`: the nodes that should run a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_number_scheduled: Option<i32>,
    /// `updatedNumberScheduled`: nodes running an updated pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_number_scheduled: Option<i32>,
    /// `numberAvailable`: nodes whose pod is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_available: Option<i32>,
}

crate::controller::slim::cached_resource!(CachedDaemonSet, "apps", "v1", "DaemonSet", "daemonsets");

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn view(strategy: Value, status: Value) -> WorkloadView {
        let object: CachedDaemonSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "obs", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": strategy,
                     "template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}},
            "status": status
        }))
        .expect("test objects are well-formed");
        DaemonSets::view(&object)
    }

    #[test]
    fn complete_when_every_node_runs_an_updated_available_pod() {
        let done = view(
            json!({"type": "RollingUpdate"}),
            json!({"observedGeneration": 2, "desiredNumberScheduled": 5, "currentNumberScheduled": 5,
                   "updatedNumberScheduled": 5, "numberAvailable": 5, "numberReady": 5}),
        );
        assert!(done.rolled_out() && done.available);
        assert_eq!(done.image_of("agent"), Some("agent:2"));
    }

    #[test]
    fn in_progress_while_a_node_runs_an_old_or_unavailable_pod() {
        let old_pod = view(
            json!({"type": "RollingUpdate"}),
            json!({"observedGeneration": 2, "desiredNumberScheduled": 5, "updatedNumberScheduled": 4, "numberAvailable": 5}),
        );
        assert_eq!(old_pod.rollout, RolloutState::Progressing { note: None });
        assert!(old_pod.available);
        let unavailable = view(
            json!({"type": "RollingUpdate"}),
            json!({"observedGeneration": 2, "desiredNumberScheduled": 5, "updatedNumberScheduled": 5, "numberAvailable": 4}),
        );
        assert!(!unavailable.rolled_out() && !unavailable.available);
        let unobserved = view(
            json!({"type": "RollingUpdate"}),
            json!({"observedGeneration": 1, "desiredNumberScheduled": 5, "updatedNumberScheduled": 5, "numberAvailable": 5}),
        );
        assert!(
            !unobserved.rolled_out(),
            "the status describes generation 1"
        );
    }

    #[test]
    fn on_delete_says_so_while_it_waits() {
        let waiting = view(
            json!({"type": "OnDelete"}),
            json!({"observedGeneration": 2, "desiredNumberScheduled": 5, "updatedNumberScheduled": 0, "numberAvailable": 5}),
        );
        assert_eq!(waiting.note(), Some(ON_DELETE_NOTE));
    }
}
