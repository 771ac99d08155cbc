//! Maps an environment's targets onto the observed workloads: which container, which
//! image it runs, which image it should run, and whether the rollout is done. Every kind
//! reads the same way here: the kinds differ only in how their driver fills the view.

use std::collections::BTreeMap;

use super::{
    decision::Action,
    snapshot::{ContainerImage, ReleaseView, Unreachable},
    workload::{WorkloadKind, WorkloadView},
};
use crate::validation::ValidEnvironment;

/// One target container, found in the cluster.
#[derive(Clone, Debug)]
pub struct Resolved<'a> {
    /// The workload.
    pub workload: &'a WorkloadView,
    /// The container whose image Greenlight sets.
    pub container: String,
    /// The Release artifact it runs.
    pub artifact: String,
}

impl Resolved<'_> {
    /// The key used in `status.baseline`: `name/container` for a Deployment (as
    /// before other kinds existed), `Kind/name/container` for the others.
    pub fn key(&self) -> String {
        let (kind, name) = (self.workload.kind, &self.workload.name);
        if kind == WorkloadKind::Deployment {
            format!("{name}/{}", self.container)
        } else {
            format!("{kind}/{name}/{}", self.container)
        }
    }

    /// The image it runs now.
    pub fn observed_image(&self) -> Option<&str> {
        self.workload.image_of(&self.container)
    }
}

/// An environment's targets as found: the workloads whose images Greenlight sets. Every
/// question the engine asks about them is a method here, so a new kind of target changes
/// this type and nothing that asks.
#[derive(Clone, Debug)]
pub struct Targets<'a> {
    workloads: Vec<Resolved<'a>>,
}

impl<'a> Targets<'a> {
    /// The environment's targets as found in the cluster, or why they cannot be used.
    pub fn resolve(
        env: &ValidEnvironment,
        workloads: &'a [WorkloadView],
        unreachable: &[Unreachable],
    ) -> Result<Self, String> {
        if let Some(cluster) = &env.cluster
            && let Some(outage) = unreachable
                .iter()
                .find(|u| &u.cluster == cluster && u.namespace == env.namespace)
        {
            return Err(format!(
                "cluster {cluster} cannot be used: {}",
                outage.reason
            ));
        }
        env.targets
            .iter()
        .map(|target| {
            let (kind, name) = (target.kind, &target.name);
            let workload = workloads
                .iter()
                .find(|w| w.is(env.cluster.as_deref(), kind, &env.namespace, name))
                .ok_or_else(|| match &env.cluster {
                    Some(cluster) => format!("{kind} {}/{name} not found in cluster {cluster}", env.namespace),
                    None => format!("{kind} {}/{name} not found", env.namespace),
                })?;
            let container = match &target.container {
                Some(container) if workload.image_of(container).is_some() => container.clone(),
                Some(container) => {
                    return Err(format!(
                        "{kind} {}/{name} has no container {container:?}",
                        env.namespace
                    ));
                }
                None if workload.containers.len() == 1 => workload.containers[0].container.clone(),
                None if workload.image_of(name).is_some() => name.clone(),
                None => {
                    return Err(format!(
                        "{kind} {}/{name} has several containers and none is named {name:?}; set the target's container",
                        env.namespace
                    ));
                }
            };
            Ok(Resolved {
                workload,
                container,
                artifact: target.artifact.clone(),
            })
        })
        .collect::<Result<_, _>>()
        .map(|workloads| Self { workloads })
    }

    /// The target containers, each in its workload.
    pub fn workloads(&self) -> &[Resolved<'a>] {
        &self.workloads
    }

    /// The images of `release` for these targets, or the missing artifact.
    pub fn release_images(&self, release: &ReleaseView) -> Result<Desired, String> {
        self.workloads
            .iter()
            .map(|t| match release.spec.artifacts.get(&t.artifact) {
                Some(image) => Ok((t.key(), image.clone())),
                None => Err(format!(
                    "release {} has no artifact {:?}",
                    release.name, t.artifact
                )),
            })
            .collect()
    }

    /// The images the targets run now.
    pub fn observed_images(&self) -> Desired {
        self.workloads
            .iter()
            .filter_map(|t| t.observed_image().map(|i| (t.key(), i.to_owned())))
            .collect()
    }

    /// Each target that does not run its desired image, and what it runs instead.
    pub fn drifted(&self, desired: &Desired) -> Vec<String> {
        self.workloads
            .iter()
            .filter(|t| {
                desired
                    .get(&t.key())
                    .is_some_and(|want| t.observed_image() != Some(want.as_str()))
            })
            .map(|t| {
                format!(
                    "{} runs {}",
                    t.key(),
                    t.observed_image().unwrap_or("nothing")
                )
            })
            .collect()
    }

    /// The field managers other than Greenlight that set a target's image, each once.
    pub fn image_managers(&self) -> Vec<String> {
        let mut managers: Vec<String> = self
            .workloads
            .iter()
            .flat_map(|t| t.workload.image_managers.iter().cloned())
            .collect();
        managers.sort();
        managers.dedup();
        managers
    }

    /// Whether every target runs its desired image (in its spec).
    pub fn images_match(&self, desired: &Desired) -> bool {
        self.workloads.iter().all(|t| {
            desired
                .get(&t.key())
                .is_none_or(|want| t.observed_image() == Some(want.as_str()))
        })
    }

    /// The images `desired` gives each target workload, by workload, with whether any of
    /// them differs from the workload's spec.
    pub fn images_by_workload(
        &self,
        desired: &Desired,
    ) -> BTreeMap<super::WorkloadRef, (Vec<ContainerImage>, bool)> {
        let mut by_workload: BTreeMap<super::WorkloadRef, (Vec<ContainerImage>, bool)> =
            BTreeMap::new();
        for target in &self.workloads {
            let Some(want) = desired.get(&target.key()) else {
                continue;
            };
            let (images, differs) = by_workload.entry(target.workload.reference()).or_default();
            images.push(ContainerImage {
                container: target.container.clone(),
                image: want.clone(),
            });
            *differs |= target.observed_image() != Some(want.as_str());
        }
        by_workload
    }

    /// `SetImages` for each workload whose spec differs from `desired`; nothing when all match.
    pub fn set_images(&self, desired: &Desired) -> Vec<Action> {
        self.images_by_workload(desired)
            .into_iter()
            .filter(|(_, (_, differs))| *differs)
            .map(|(workload, (images, _))| Action::SetImages { workload, images })
            .collect()
    }

    /// Whether every target workload has finished rolling out.
    pub fn rolled_out(&self) -> bool {
        self.workloads.iter().all(|t| t.workload.rolled_out())
    }

    /// The kinds of the target workloads, each once.
    pub fn kinds(&self) -> Vec<WorkloadKind> {
        let mut kinds: Vec<WorkloadKind> = self.workloads.iter().map(|t| t.workload.kind).collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Whether every target workload has all its replicas available.
    pub fn available(&self) -> bool {
        self.workloads.iter().all(|t| t.workload.available)
    }

    /// The target workloads whose controller has not yet observed their latest spec.
    pub fn unobserved(&self) -> Vec<&'a WorkloadView> {
        let mut unobserved: Vec<&WorkloadView> = self
            .workloads
            .iter()
            .map(|t| t.workload)
            .filter(|w| !w.observed())
            .collect();
        unobserved.dedup_by_key(|w| (w.kind, &w.name));
        unobserved
    }

    /// Why a target workload's rollout of its latest spec cannot complete, if its controller
    /// says so.
    pub fn stuck(&self) -> Option<String> {
        self.workloads.iter().find_map(|t| {
            let reason = t.workload.failure()?;
            Some(format!("{} {}: {reason}", t.workload.kind, t.workload.name))
        })
    }

    /// What a person should know about a rollout that is still going (pods that change only
    /// when deleted), one note per workload.
    pub fn notes(&self) -> Option<String> {
        let mut notes: Vec<String> = Vec::new();
        for t in &self.workloads {
            if let Some(note) = t.workload.note() {
                let note = format!("{} {}: {note}", t.workload.kind, t.workload.name);
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// The images a set of targets should run, by [`Resolved::key`].
pub type Desired = BTreeMap<String, String>;
