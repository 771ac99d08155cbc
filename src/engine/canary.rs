//! Canaries: during a canary step, a `<name>-canary` Deployment beside each target
//! Deployment runs the release with a share of the replicas. Outside a canary step, a
//! canary that still exists is garbage and is deleted.

use std::collections::BTreeMap;

use super::{
    ContainerImage, WorkloadRef, WorkloadView,
    decision::Action,
    targets::{Desired, Resolved},
};

/// The name of the canary Deployment beside the Deployment `stable`.
pub fn canary_name(stable: &str) -> String {
    format!("{stable}-canary")
}

/// The canary beside `stable`.
pub fn canary_of(stable: &WorkloadRef) -> WorkloadRef {
    WorkloadRef {
        name: canary_name(&stable.name),
        ..stable.clone()
    }
}

/// The images each target workload's canary runs, by target workload.
fn images_by_workload(
    targets: &[Resolved<'_>],
    desired: &Desired,
) -> BTreeMap<WorkloadRef, Vec<ContainerImage>> {
    let mut by_workload: BTreeMap<WorkloadRef, Vec<ContainerImage>> = BTreeMap::new();
    for target in targets {
        if let Some(image) = desired.get(&target.key()) {
            by_workload
                .entry(target.workload.reference())
                .or_default()
                .push(ContainerImage {
                    container: target.container.clone(),
                    image: image.clone(),
                });
        }
    }
    by_workload
}

/// `SetCanary` for every target workload. Asked at every decision of a canary step (it
/// is idempotent), so a restart between the status write and the change still sets the
/// step's share.
pub fn set_canaries(targets: &[Resolved<'_>], desired: &Desired, weight: u32) -> Vec<Action> {
    images_by_workload(targets, desired)
        .into_iter()
        .map(|(stable, images)| Action::SetCanary {
            stable,
            images,
            weight,
        })
        .collect()
}

/// Where the canaries of a step stand.
#[derive(Debug, PartialEq)]
pub enum Readiness {
    /// Every canary runs the release, rolled out and available.
    Ready,
    /// Not yet: what it waits for.
    Waiting(String),
    /// A canary's rollout failed (its Deployment's progress deadline).
    Failed(String),
}

/// Whether every target's canary runs `desired`, rolled out and available.
pub fn readiness(
    observed: &[WorkloadView],
    targets: &[Resolved<'_>],
    desired: &Desired,
) -> Readiness {
    for (stable, images) in images_by_workload(targets, desired) {
        let canary = canary_of(&stable);
        let Some(view) = observed.iter().find(|w| w.is_ref(&canary)) else {
            return Readiness::Waiting(format!("creating canary {canary}"));
        };
        if images
            .iter()
            .any(|want| view.image_of(&want.container) != Some(want.image.as_str()))
        {
            return Readiness::Waiting(format!("canary {canary} takes the release's images"));
        }
        if let Some(reason) = view.failure() {
            return Readiness::Failed(format!("canary {canary}: {reason}"));
        }
        if !view.rolled_out() || !view.available {
            return Readiness::Waiting(format!("canary {canary} rolls out"));
        }
    }
    Readiness::Ready
}

/// `DeleteCanary` for every target whose canary still exists.
pub fn delete_canaries(observed: &[WorkloadView], targets: &[Resolved<'_>]) -> Vec<Action> {
    let mut stables: Vec<WorkloadRef> = targets.iter().map(|t| t.workload.reference()).collect();
    stables.sort();
    stables.dedup();
    stables
        .into_iter()
        .filter(|stable| {
            let canary = canary_of(stable);
            observed.iter().any(|w| w.is_ref(&canary))
        })
        .map(|stable| Action::DeleteCanary { stable })
        .collect()
}
