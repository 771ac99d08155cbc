//! What an environment runs, as the engine sees it: a workload of some kind, the images of
//! its containers and how its rollout stands. Each kind's driver on the controller side
//! (`controller::workloads`) and the simulator turn their objects into this view; the
//! engine never reads a kind's own status fields.

use super::snapshot::ContainerImage;
pub use crate::api::WorkloadKind;

/// Names one workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    /// The cluster it is in (its kubeconfig Secret's name); `None`: the controller's own.
    pub cluster: Option<String>,
    /// Its kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        match &self.cluster {
            Some(cluster) => write!(f, " in cluster {cluster}"),
            None => Ok(()),
        }
    }
}

/// What a person must know while a workload with `updateStrategy: OnDelete` waits.
pub const ON_DELETE_NOTE: &str = "its updateStrategy is OnDelete: Greenlight changed the pod template, and each pod changes only when it is deleted";

/// How a workload's rollout of its latest spec stands, as its kind judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutState {
    /// Every replica (pod, node, schedule) runs the latest spec.
    Complete,
    /// Still changing. `note` says what a person should know while it waits (pods that
    /// change only when deleted, say); `None` for an ordinary rollout.
    Progressing {
        /// Why it may not finish by itself.
        note: Option<String>,
    },
    /// The workload's controller gave up on it (a Deployment's progress deadline).
    Failed {
        /// In words.
        reason: String,
    },
}

/// A target workload as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadView {
    /// The cluster it is in (its kubeconfig Secret's name); `None`: the controller's own.
    pub cluster: Option<String>,
    /// Its kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The containers of its pod template, in order.
    pub containers: Vec<ContainerImage>,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`; kinds whose controller reports none count as having
    /// observed every generation.
    pub observed_generation: i64,
    /// How the rollout of the observed generation stands.
    pub rollout: RolloutState,
    /// Every desired replica is available, whatever its version.
    pub available: bool,
    /// `spec.replicas` (defaulted to 1) for the kinds that have it; `None` for the others.
    pub replicas: Option<i32>,
    /// The field managers other than Greenlight that set a container image of its pod
    /// template (from `managedFields`).
    pub image_managers: Vec<String>,
}

impl WorkloadView {
    /// Its reference.
    pub fn reference(&self) -> WorkloadRef {
        WorkloadRef {
            cluster: self.cluster.clone(),
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Whether it is the workload `kind` `namespace/name` in `cluster`.
    pub fn is(
        &self,
        cluster: Option<&str>,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> bool {
        self.cluster.as_deref() == cluster
            && self.kind == kind
            && self.namespace == namespace
            && self.name == name
    }

    /// Whether it is the workload `reference` names.
    pub fn is_ref(&self, reference: &WorkloadRef) -> bool {
        self.is(
            reference.cluster.as_deref(),
            reference.kind,
            &reference.namespace,
            &reference.name,
        )
    }

    /// The image of `container`, if it exists.
    pub fn image_of(&self, container: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|c| c.container == container)
            .map(|c| c.image.as_str())
    }

    /// Its controller has seen the latest spec: until it has, its status describes an
    /// older one and says nothing of the new pods.
    pub fn observed(&self) -> bool {
        self.observed_generation >= self.generation
    }

    /// Rolled out: the controller saw the latest spec and reports it complete.
    pub fn rolled_out(&self) -> bool {
        self.observed() && self.rollout == RolloutState::Complete
    }

    /// Why the rollout of the latest spec cannot complete, if its controller says so (a
    /// verdict about an older generation says nothing of this rollout).
    pub fn failure(&self) -> Option<&str> {
        match &self.rollout {
            RolloutState::Failed { reason } if self.observed() => Some(reason),
            _ => None,
        }
    }

    /// What a person should know about the rollout while it waits.
    pub fn note(&self) -> Option<&str> {
        match &self.rollout {
            RolloutState::Progressing { note } if self.observed() => note.as_deref(),
            _ => None,
        }
    }
}
