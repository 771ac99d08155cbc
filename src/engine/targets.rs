//! Maps an environment's targets onto the observed Deployments: which container, which
//! image it runs, which image it should run, and whether the rollout is done.

use std::collections::BTreeMap;

use super::{
    decision::Action,
    snapshot::{ContainerImage, DeploymentView, ReleaseView},
};
use crate::validation::ValidEnvironment;

/// One target container, found in the cluster.
#[derive(Clone, Debug)]
pub struct Resolved<'a> {
    /// The Deployment.
    pub deployment: &'a DeploymentView,
    /// The container whose image Greenlight sets.
    pub container: String,
    /// The Release artifact it runs.
    pub artifact: String,
}

impl Resolved<'_> {
    /// The `deployment/container` key used in `status.baseline`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.deployment.name, self.container)
    }

    /// The image it runs now.
    pub fn observed_image(&self) -> Option<&str> {
        self.deployment.image_of(&self.container)
    }
}

/// The environment's targets as found in the cluster, or why they cannot be used.
pub fn resolve<'a>(
    env: &ValidEnvironment,
    deployments: &'a [DeploymentView],
) -> Result<Vec<Resolved<'a>>, String> {
    env.targets
        .iter()
        .map(|target| {
            let deployment = deployments
                .iter()
                .find(|d| d.namespace == env.namespace && d.name == target.deployment)
                .ok_or_else(|| format!("Deployment {}/{} not found", env.namespace, target.deployment))?;
            let container = match &target.container {
                Some(name) if deployment.image_of(name).is_some() => name.clone(),
                Some(name) => return Err(format!("Deployment {}/{} has no container {name:?}", env.namespace, target.deployment)),
                None if deployment.containers.len() == 1 => deployment.containers[0].container.clone(),
                None if deployment.image_of(&target.deployment).is_some() => target.deployment.clone(),
                None => {
                    return Err(format!(
                        "Deployment {}/{} has several containers and none is named {:?}; set target.deployments[].container",
                        env.namespace, target.deployment, target.deployment
                    ));
                }
            };
            Ok(Resolved { deployment, container, artifact: target.artifact.clone() })
        })
        .collect()
}

/// The images a set of targets should run, by `deployment/container`.
pub type Desired = BTreeMap<String, String>;

/// The images of `release` for these targets, or the missing artifact.
pub fn release_images(targets: &[Resolved<'_>], release: &ReleaseView) -> Result<Desired, String> {
    targets
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
pub fn observed_images(targets: &[Resolved<'_>]) -> Desired {
    targets
        .iter()
        .filter_map(|t| t.observed_image().map(|i| (t.key(), i.to_owned())))
        .collect()
}

/// Whether every target runs its desired image (in its spec).
pub fn images_match(targets: &[Resolved<'_>], desired: &Desired) -> bool {
    targets.iter().all(|t| {
        desired
            .get(&t.key())
            .is_none_or(|want| t.observed_image() == Some(want.as_str()))
    })
}

/// `SetImages` for each Deployment whose spec differs from `desired`; nothing when all match.
pub fn set_images(namespace: &str, targets: &[Resolved<'_>], desired: &Desired) -> Vec<Action> {
    let mut by_deployment: BTreeMap<&str, Vec<ContainerImage>> = BTreeMap::new();
    let mut differs: BTreeMap<&str, bool> = BTreeMap::new();
    for target in targets {
        let Some(want) = desired.get(&target.key()) else {
            continue;
        };
        by_deployment
            .entry(&target.deployment.name)
            .or_default()
            .push(ContainerImage {
                container: target.container.clone(),
                image: want.clone(),
            });
        *differs.entry(&target.deployment.name).or_default() |=
            target.observed_image() != Some(want.as_str());
    }
    by_deployment
        .into_iter()
        .filter(|(name, _)| differs[name])
        .map(|(name, images)| Action::SetImages {
            namespace: namespace.to_owned(),
            deployment: name.to_owned(),
            images,
        })
        .collect()
}

/// Whether every target Deployment has finished rolling out.
pub fn rolled_out(targets: &[Resolved<'_>]) -> bool {
    targets.iter().all(|t| t.deployment.rolled_out())
}

/// Whether every target Deployment has all its replicas available.
pub fn available(targets: &[Resolved<'_>]) -> bool {
    targets.iter().all(|t| t.deployment.available())
}

/// The target Deployments whose controller has not yet observed their latest spec.
pub fn unobserved<'a>(targets: &'a [Resolved<'a>]) -> Vec<&'a DeploymentView> {
    let mut unobserved: Vec<&DeploymentView> = targets
        .iter()
        .map(|t| t.deployment)
        .filter(|d| !d.observed())
        .collect();
    unobserved.dedup_by_key(|d| &d.name);
    unobserved
}

/// Whether a target Deployment reports `ProgressDeadlineExceeded` for its latest spec
/// (a condition left from an older generation says nothing of this rollout).
pub fn stuck(targets: &[Resolved<'_>]) -> Option<String> {
    targets
        .iter()
        .find(|t| t.deployment.progress_deadline_exceeded && t.deployment.observed())
        .map(|t| {
            format!(
                "Deployment {} exceeded its progress deadline",
                t.deployment.name
            )
        })
}
