//! Maps an environment's targets onto what was observed: which container, which image it
//! runs, which image it should run, and whether the rollout is done. Every workload kind
//! reads the same way here (the kinds differ only in how their driver fills the view); an
//! environment in GitOps mode reads its images from its repository and its rollout from
//! Argo CD, Flux or the workloads.

use std::collections::BTreeMap;

use super::{
    decision::{Action, ChangeNote, CommitRequest},
    snapshot::{ContainerImage, GitChange, GitRead, ReleaseView, Snapshot, SyncState},
    workload::{WorkloadKind, WorkloadView},
};
use crate::validation::{SyncSource, ValidEnvironment};

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

/// An environment's targets as found: the workloads whose images Greenlight sets, or in
/// GitOps mode the repository it commits them to. Every question the engine asks about
/// them is a method here, so a new kind of target changes this type and nothing that asks.
#[derive(Clone, Debug)]
pub struct Targets<'a> {
    /// The target containers (in GitOps mode, only watched; perhaps none).
    workloads: Vec<Resolved<'a>>,
    /// GitOps mode: the repository.
    git: Option<GitTargets<'a>>,
}

/// An environment's repository, as read.
#[derive(Clone, Debug)]
struct GitTargets<'a> {
    environment: &'a str,
    read: &'a GitRead,
    /// The artifacts its layout writes.
    artifacts: Vec<&'a str>,
    /// What applies it, in words (`Argo CD Application argocd/shop-prod`).
    applier: String,
}

impl<'a> Targets<'a> {
    /// The environment's targets as found in the snapshot, or why they cannot be used.
    pub fn resolve(env: &'a ValidEnvironment, snap: &'a Snapshot) -> Result<Self, String> {
        if let Some(cluster) = &env.cluster
            && let Some(outage) = snap
                .unreachable
                .iter()
                .find(|u| &u.cluster == cluster && u.namespace == env.namespace)
        {
            return Err(format!(
                "cluster {cluster} cannot be used: {}",
                outage.reason
            ));
        }
        let git = match &env.git {
            None => None,
            Some(git) => {
                let view = snap
                    .git
                    .iter()
                    .find(|g| g.environment == env.name)
                    .ok_or_else(|| format!("repository {} not read yet", git.repository))?;
                let read = view.state.as_ref().map_err(|why| {
                    format!("repository {} cannot be read: {why}", git.repository)
                })?;
                let applier = match &git.sync {
                    SyncSource::ArgoCd { namespace, name } => {
                        format!("Argo CD Application {namespace}/{name}")
                    }
                    SyncSource::Flux { namespace, name } => {
                        format!("Flux Kustomization {namespace}/{name}")
                    }
                    SyncSource::Workloads => "the target workloads".to_owned(),
                };
                Some(GitTargets {
                    environment: &env.name,
                    read,
                    artifacts: git.layout.artifacts(),
                    applier,
                })
            }
        };
        // With Argo CD or Flux saying when a commit is deployed, the workloads (perhaps
        // in a cluster Greenlight does not reach) are not looked for.
        let workloads = match &env.git {
            Some(git) if git.sync != SyncSource::Workloads => Vec::new(),
            _ => resolve_workloads(env, &snap.workloads)?,
        };
        Ok(Self { workloads, git })
    }

    /// The target containers, each in its workload.
    pub fn workloads(&self) -> &[Resolved<'a>] {
        &self.workloads
    }

    /// The person's commit that changed the images in Git after Greenlight's last one,
    /// if any (GitOps mode).
    pub fn changed_in_git(&self) -> Option<&'a GitChange> {
        self.git.as_ref()?.read.changed_by.as_ref()
    }

    /// The images of `release` for these targets, or the missing artifact.
    pub fn release_images(&self, release: &ReleaseView) -> Result<Desired, String> {
        let image = |artifact: &str, key: String| match release.spec.artifacts.get(artifact) {
            Some(image) => Ok((key, image.clone())),
            None => Err(format!(
                "release {} has no artifact {artifact:?}",
                release.name
            )),
        };
        match &self.git {
            Some(git) => git
                .artifacts
                .iter()
                .map(|a| image(a, (*a).to_owned()))
                .collect(),
            None => self
                .workloads
                .iter()
                .map(|t| image(&t.artifact, t.key()))
                .collect(),
        }
    }

    /// The images the targets run now (in GitOps mode: the images the branch declares).
    pub fn observed_images(&self) -> Desired {
        match &self.git {
            Some(git) => git.read.images.clone(),
            None => self
                .workloads
                .iter()
                .filter_map(|t| t.observed_image().map(|i| (t.key(), i.to_owned())))
                .collect(),
        }
    }

    /// Each target that does not run its desired image, and what it runs instead.
    pub fn drifted(&self, desired: &Desired) -> Vec<String> {
        let observed = self.observed_images();
        desired
            .iter()
            .filter(|(key, want)| observed.get(*key) != Some(*want))
            .map(|(key, _)| {
                let now = observed.get(key).map_or("nothing", String::as_str);
                match &self.git {
                    Some(_) => format!("{key} is {now} in Git"),
                    None => format!("{key} runs {now}"),
                }
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

    /// Whether every target runs its desired image (in its spec; in GitOps mode, in the
    /// branch).
    pub fn images_match(&self, desired: &Desired) -> bool {
        let observed = self.observed_images();
        desired
            .iter()
            .all(|(key, want)| observed.get(key) == Some(want))
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

    /// What makes the targets run `desired`: `SetImages` for each workload whose spec
    /// differs, or in GitOps mode one commit that says `why`; nothing when all match. (A
    /// person's change in Git holds the environment before anything asks: `decide`.)
    pub fn set_images(&self, desired: &Desired, why: &ChangeNote) -> Vec<Action> {
        if let Some(git) = &self.git {
            if self.images_match(desired) {
                return Vec::new();
            }
            return vec![Action::Commit(CommitRequest {
                environment: git.environment.to_owned(),
                images: desired.clone(),
                note: why.clone(),
            })];
        }
        self.images_by_workload(desired)
            .into_iter()
            .filter(|(_, (_, differs))| *differs)
            .map(|(workload, (images, _))| Action::SetImages { workload, images })
            .collect()
    }

    /// Whether the targets finished rolling out what they declare: every workload, or in
    /// GitOps mode, Argo CD or Flux applied the branch's images and reports them healthy
    /// (without either, the workloads run them and rolled out).
    pub fn rolled_out(&self) -> bool {
        let workloads_done = || self.workloads.iter().all(|t| t.workload.rolled_out());
        match self.git.as_ref().map(|g| &g.read.sync) {
            None => workloads_done(),
            Some(Some(sync)) => *sync == SyncState::Healthy,
            Some(None) => self.workloads_run_git() && workloads_done(),
        }
    }

    /// Whether every watched workload runs the image the branch declares.
    fn workloads_run_git(&self) -> bool {
        let Some(git) = &self.git else { return true };
        self.workloads
            .iter()
            .all(|t| git.read.images.get(&t.artifact).map(String::as_str) == t.observed_image())
    }

    /// Who observes the rollout, for the message of a deadline that counts from its
    /// observation: ` of the Deployment controller observing it`.
    pub fn observer(&self) -> String {
        if let Some(git) = &self.git
            && git.read.sync.is_some()
        {
            return format!(" of {} applying it", git.applier);
        }
        let mut kinds: Vec<_> = self.workloads.iter().map(|t| t.workload.kind).collect();
        kinds.sort();
        kinds.dedup();
        match kinds.as_slice() {
            [kind] => format!(" of the {kind} controller observing it"),
            _ => " of the workload controllers observing it".to_owned(),
        }
    }

    /// Whether the targets are available: every workload has all its replicas, or in
    /// GitOps mode, Argo CD or Flux does not report them failed.
    pub fn available(&self) -> bool {
        match self.git.as_ref().and_then(|g| g.read.sync.as_ref()) {
            Some(sync) => !matches!(sync, SyncState::Failed(_)),
            None => self.workloads.iter().all(|t| t.workload.available),
        }
    }

    /// What has not yet seen the change the targets declare, in words (a workload
    /// controller behind its spec, Argo CD or Flux not at the commit): the rollout waits
    /// for it, and its progress deadline starts once it has.
    pub fn unobserved(&self) -> Option<String> {
        if let Some(git) = &self.git {
            match &git.read.sync {
                Some(SyncState::Waiting(at)) => {
                    return Some(format!(
                        "{} to apply commit {} ({at})",
                        git.applier,
                        short(&git.read.head)
                    ));
                }
                Some(_) => return None,
                None if !self.workloads_run_git() => {
                    return Some(format!(
                        "the target workloads to run the images of commit {} (applied by Argo CD, Flux or whatever applies the repository)",
                        short(&git.read.head)
                    ));
                }
                None => {}
            }
        }
        let mut unobserved: Vec<&WorkloadView> = self
            .workloads
            .iter()
            .map(|t| t.workload)
            .filter(|w| !w.observed())
            .collect();
        unobserved.dedup_by_key(|w| (w.kind, &w.name));
        let lagging = unobserved.first()?;
        let others = match unobserved.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(format!(
            "the {} controller to observe generation {} of {}/{}{others} (observed: {})",
            lagging.kind,
            lagging.generation,
            lagging.namespace,
            lagging.name,
            lagging.observed_generation,
        ))
    }

    /// Why the rollout of what the targets declare cannot complete, if whatever rolls it
    /// out says so.
    pub fn stuck(&self) -> Option<String> {
        if let Some(git) = &self.git
            && let Some(SyncState::Failed(why)) = &git.read.sync
        {
            return Some(format!("{}: {why}", git.applier));
        }
        self.workloads.iter().find_map(|t| {
            let reason = t.workload.failure()?;
            Some(format!("{} {}: {reason}", t.workload.kind, t.workload.name))
        })
    }

    /// What a person should know about a rollout that is still going (pods that change only
    /// when deleted; what Argo CD or Flux says), one note per workload.
    pub fn notes(&self) -> Option<String> {
        if let Some(git) = &self.git
            && let Some(SyncState::Progressing(what)) = &git.read.sync
        {
            return Some(format!("{}: {what}", git.applier));
        }
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

/// A commit id as people read it.
pub fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// The environment's target containers, found among the observed workloads.
fn resolve_workloads<'a>(
    env: &ValidEnvironment,
    workloads: &'a [WorkloadView],
) -> Result<Vec<Resolved<'a>>, String> {
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
        .collect()
}

/// The images a set of targets should run, by [`Resolved::key`] (by artifact in GitOps
/// mode).
pub type Desired = BTreeMap<String, String>;
