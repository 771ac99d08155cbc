//! The simulated cluster: workloads that roll out after a delay, Jobs that finish after
//! theirs, and probes that answer, each failing where a [`Failure`] says so.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;

use super::git::{Applier, SimRepo};
use crate::engine::{
    Action, Backend, ContainerImage, GitView, JobOutcome, JobRequest, JobView, Observation,
    ProbeId, ProbeKind, ProbePurpose, ProbeRequest, ReleaseView, RolloutState, RouteRef, RouteView,
    Unreachable, WorkloadKind, WorkloadRef, WorkloadView,
};

/// How a release fails in an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureMode {
    /// The rollout never becomes available.
    Rollout,
    /// The HTTP health checks fail while it runs.
    Health,
    /// Its test Jobs fail (verification tests, and gate tests run for it).
    Test,
    /// Metric checks are out of their thresholds while it runs.
    Metric,
    /// Its pre-deploy Jobs fail.
    PreDeploy,
}

impl std::str::FromStr for FailureMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rollout" => Ok(Self::Rollout),
            "health" => Ok(Self::Health),
            "test" => Ok(Self::Test),
            "metric" => Ok(Self::Metric),
            "pre-deploy" | "predeploy" | "migration" => Ok(Self::PreDeploy),
            other => Err(format!(
                "unknown failure {other:?}: expected rollout, health, test, metric or pre-deploy"
            )),
        }
    }
}

/// "Version V fails in environment E, this way."
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Failure {
    /// `Release.spec.version`.
    pub version: String,
    /// Environment name.
    pub environment: String,
    /// How.
    pub mode: FailureMode,
}

impl std::str::FromStr for Failure {
    type Err = String;

    /// `VERSION@ENV[:how]`, `how` defaulting to `health`; `*` as the version matches every
    /// version, the baseline included.
    fn from_str(text: &str) -> Result<Self, String> {
        let (target, mode) = match text.rsplit_once(':') {
            Some((target, mode)) if !mode.contains('@') => (target, mode.parse()?),
            _ => (text, FailureMode::Health),
        };
        let (version, environment) = target
            .rsplit_once('@')
            .filter(|(v, e)| !v.is_empty() && !e.is_empty())
            .ok_or_else(|| format!("{text:?} is not VERSION@ENV[:how]"))?;
        Ok(Self {
            version: version.into(),
            environment: environment.into(),
            mode,
        })
    }
}

/// Timing of the simulated cluster.
#[derive(Clone, Debug)]
pub struct Timing {
    /// From an image change to every replica available.
    pub rollout: Duration,
    /// How long a Job runs when its arguments do not say (`--duration`).
    pub job: Duration,
    /// How far the workload controllers lag: a new spec is observed (`observedGeneration`
    /// catches up) this long after it was written, and the rollout starts then.
    pub observe: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            rollout: Duration::from_secs(30),
            job: Duration::from_secs(60),
            observe: Duration::ZERO,
        }
    }
}

/// The replicas of every simulated Deployment and StatefulSet: canary steps of 10% and
/// 50% run 1 and 2 pods.
const SIM_REPLICAS: i32 = 4;

struct SimWorkload {
    view: WorkloadView,
    /// `updateStrategy: OnDelete`: a new template reaches the pods only when they are
    /// deleted ([`World::delete_pods`]).
    on_delete: bool,
    environment: String,
    rollout_done_at: Option<Timestamp>,
    /// When the workload controller observes the latest spec, while it lags.
    observed_at: Option<Timestamp>,
}

struct SimJob {
    view: JobView,
    done_at: Timestamp,
    fails: bool,
}

struct SimProbe {
    request: ProbeRequest,
    next_at: Timestamp,
}

/// The cluster: workloads, Jobs and probe results, advanced by a virtual clock.
pub struct World {
    timing: Timing,
    failures: Vec<Failure>,
    workloads: Vec<SimWorkload>,
    /// Namespaces of other clusters that cannot be used now: (cluster, namespace) → why.
    unreachable: BTreeMap<(String, String), String>,
    /// By cluster, namespace and name.
    jobs: BTreeMap<(Option<String>, String, String), SimJob>,
    /// HTTPRoutes, whose weights change at once (a gateway applies them).
    routes: BTreeMap<RouteRef, RouteView>,
    probes: BTreeMap<ProbeId, SimProbe>,
    results: crate::checks::Results,
    /// How many times each workload's images were changed, by `namespace/name` for a
    /// Deployment and `namespace/Kind/name` for the other kinds.
    pub image_changes: BTreeMap<String, u32>,
    /// The repositories of environments in GitOps mode, by environment.
    repos: BTreeMap<String, SimRepo>,
    /// For a repository applied to the workloads: each target container and its artifact.
    repo_targets: BTreeMap<String, Vec<(WorkloadRef, String, String)>>,
}

/// The version of the release whose image one of `images` is.
fn version_of(images: &BTreeMap<String, String>, releases: &[ReleaseView]) -> Option<String> {
    releases
        .iter()
        .find(|r| {
            images
                .values()
                .any(|i| r.spec.artifacts.values().any(|a| a == i))
        })
        .map(|r| r.spec.version.clone())
}

pub(super) fn add(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(jiff::SignedDuration::try_from(duration).unwrap_or_default())
        .unwrap_or(Timestamp::MAX)
}

impl World {
    /// An empty cluster.
    pub fn new(timing: Timing, failures: Vec<Failure>) -> Self {
        Self {
            timing,
            failures,
            workloads: vec![],
            jobs: BTreeMap::new(),
            routes: BTreeMap::new(),
            unreachable: BTreeMap::new(),
            probes: BTreeMap::new(),
            results: crate::checks::Results::default(),
            image_changes: BTreeMap::new(),
            repos: BTreeMap::new(),
            repo_targets: BTreeMap::new(),
        }
    }

    /// Adds the repository of `environment`; `targets` (workload, container, artifact)
    /// take its images when its applier is [`Applier::Workloads`].
    pub fn add_repo(
        &mut self,
        environment: &str,
        repo: SimRepo,
        targets: Vec<(WorkloadRef, String, String)>,
    ) {
        self.repos.insert(environment.to_owned(), repo);
        self.repo_targets.insert(environment.to_owned(), targets);
    }

    /// The repository of `environment`, to change it as a person would.
    pub fn repo_mut(&mut self, environment: &str) -> Option<&mut SimRepo> {
        self.repos.get_mut(environment)
    }

    /// How many repositories there are.
    pub fn repo_count(&self) -> usize {
        self.repos.len()
    }

    /// The repository of `environment`.
    pub fn repo(&self, environment: &str) -> Option<&SimRepo> {
        self.repos.get(environment)
    }

    /// What the controller reads of every repository.
    pub fn git_views(&self, releases: &[ReleaseView]) -> Vec<GitView> {
        self.repos
            .iter()
            .map(|(environment, repo)| {
                let version = version_of(repo.applied_images(), releases);
                let failing = self.fails(version.as_deref(), environment, FailureMode::Rollout);
                repo.view(environment, failing)
            })
            .collect()
    }

    /// Adds an HTTPRoute with one rule: all traffic to `stable`, none to `canary`.
    pub fn add_route(&mut self, route: RouteRef, stable: &str, canary: &str) {
        let backend = |service: &str, weight| Backend {
            service: service.into(),
            weight,
        };
        let view = RouteView {
            route: route.clone(),
            rules: vec![vec![backend(stable, 100), backend(canary, 0)]],
        };
        self.routes.insert(route, view);
    }

    /// Sets a container's image as another field manager would (a GitOps tool syncing Git,
    /// a person): a change Greenlight did not make, which it sees as drift.
    pub fn set_image_as(
        &mut self,
        workload: &WorkloadRef,
        image: ContainerImage,
        manager: &str,
        now: Timestamp,
        releases: &[ReleaseView],
    ) {
        let edit = Action::SetImages {
            workload: workload.clone(),
            images: vec![image],
        };
        self.apply(&edit, now, releases);
        if let Some(w) = self.find_mut(workload)
            && !w.view.image_managers.iter().any(|m| m == manager)
        {
            w.view.image_managers.push(manager.to_owned());
        }
    }

    /// Deletes every HTTPRoute (someone removed them).
    pub fn remove_routes(&mut self) {
        self.routes.clear();
    }

    /// The HTTPRoutes as they are now.
    pub fn routes(&self) -> Vec<RouteView> {
        self.routes.values().cloned().collect()
    }

    /// Adds a healthy workload running `containers`.
    pub fn add_workload(
        &mut self,
        environment: &str,
        workload: WorkloadRef,
        containers: Vec<ContainerImage>,
    ) {
        self.workloads.push(SimWorkload {
            view: WorkloadView {
                cluster: workload.cluster,
                kind: workload.kind,
                namespace: workload.namespace,
                name: workload.name,
                containers,
                generation: 1,
                observed_generation: 1,
                rollout: RolloutState::Complete,
                available: true,
                replicas: matches!(
                    workload.kind,
                    WorkloadKind::Deployment | WorkloadKind::StatefulSet
                )
                .then_some(SIM_REPLICAS),
                image_managers: Vec::new(),
            },
            environment: environment.into(),
            on_delete: false,
            rollout_done_at: None,
            observed_at: None,
        });
    }

    /// Gives a StatefulSet or DaemonSet `updateStrategy: OnDelete`.
    pub fn set_on_delete(&mut self, workload: &WorkloadRef) {
        if let Some(w) = self.find_mut(workload) {
            w.on_delete = true;
        }
    }

    /// Deletes a workload's pods (a person does, for an `OnDelete` workload): the new ones
    /// run its current template and are available after the rollout time.
    pub fn delete_pods(&mut self, workload: &WorkloadRef, now: Timestamp) {
        let rollout = self.timing.rollout;
        if let Some(w) = self.find_mut(workload)
            && w.view.rollout != RolloutState::Complete
        {
            w.view.rollout = RolloutState::Progressing { note: None };
            w.rollout_done_at = Some(add(now, rollout));
        }
    }

    fn find_mut(&mut self, workload: &WorkloadRef) -> Option<&mut SimWorkload> {
        self.workloads.iter_mut().find(|w| w.view.is_ref(workload))
    }

    /// Whether a workload exists.
    pub fn has_workload(&self, workload: &WorkloadRef) -> bool {
        self.workloads.iter().any(|w| w.view.is_ref(workload))
    }

    /// Makes a namespace of another cluster unusable (`Some(why)`) or usable again.
    pub fn set_unreachable(&mut self, cluster: &str, namespace: &str, why: Option<&str>) {
        let key = (cluster.to_owned(), namespace.to_owned());
        match why {
            Some(why) => {
                self.unreachable.insert(key, why.to_owned());
            }
            None => {
                self.unreachable.remove(&key);
            }
        }
    }

    /// The namespaces of other clusters that cannot be used now.
    pub fn unreachable(&self) -> Vec<Unreachable> {
        self.unreachable
            .iter()
            .map(|((cluster, namespace), reason)| Unreachable {
                cluster: cluster.clone(),
                namespace: namespace.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// Observed workloads.
    pub fn workloads(&self) -> Vec<WorkloadView> {
        self.workloads.iter().map(|w| w.view.clone()).collect()
    }

    /// Observed Jobs.
    pub fn jobs(&self) -> Vec<JobView> {
        self.jobs.values().map(|j| j.view.clone()).collect()
    }

    /// Latest probe results.
    pub fn observations(&self) -> Vec<Observation> {
        self.results.observations()
    }

    /// Adds a failure from now on.
    pub fn inject(&mut self, failure: Failure) {
        self.failures.push(failure);
    }

    /// Whether `version` (`None`: images of no release, such as the baseline) fails here.
    /// A failure for version `*` matches everything.
    fn fails(&self, version: Option<&str>, environment: &str, mode: FailureMode) -> bool {
        self.failures.iter().any(|f| {
            f.environment == environment
                && f.mode == mode
                && (f.version == "*" || version.is_some_and(|v| f.version == v))
        })
    }

    /// The version whose images a workload runs, if they are a release's.
    fn version_running(&self, workload: &WorkloadView, releases: &[ReleaseView]) -> Option<String> {
        releases
            .iter()
            .find(|r| {
                workload
                    .containers
                    .iter()
                    .any(|c| r.spec.artifacts.values().any(|image| image == &c.image))
            })
            .map(|r| r.spec.version.clone())
    }

    /// Versions running in an environment.
    fn versions_in(&self, environment: &str, releases: &[ReleaseView]) -> Vec<String> {
        let applied = self
            .repos
            .get(environment)
            .filter(|repo| repo.applier() == Applier::SyncObject)
            .and_then(|repo| version_of(repo.applied_images(), releases));
        self.workloads
            .iter()
            .filter(|w| w.environment == environment)
            .filter_map(|w| self.version_running(&w.view, releases))
            .chain(applied)
            .collect()
    }

    /// Applies one action at `now`. Returns whether it changed what the controller sees at
    /// once (its watch then delivers the change, and it reconciles again).
    pub fn apply(&mut self, action: &Action, now: Timestamp, releases: &[ReleaseView]) -> bool {
        let place = match action {
            Action::SetImages { workload, .. } => (&workload.cluster, &workload.namespace),
            Action::SetCanary { stable, .. } | Action::DeleteCanary { stable, .. } => {
                (&stable.cluster, &stable.namespace)
            }
            Action::SetRouteWeights { route, .. } => (&route.cluster, &route.namespace),
            Action::CreateJob(request) => (&request.cluster, &request.namespace),
            Action::DeleteJob {
                cluster, namespace, ..
            } => (cluster, namespace),
            Action::Commit(request) => {
                let delay = self.timing.observe;
                let summary = format!(
                    "{} {} in {}",
                    request.note.purpose.as_str(),
                    request.note.version,
                    request.environment
                );
                let committed = self
                    .repos
                    .get_mut(&request.environment)
                    .is_some_and(|repo| repo.commit(&request.images, &summary, now, delay));
                // An applier without delay applies it at once.
                self.advance_repos(now, releases);
                return committed;
            }
        };
        if let (Some(cluster), namespace) = place
            && self
                .unreachable
                .contains_key(&(cluster.clone(), namespace.clone()))
        {
            // The write never reaches a cluster that cannot be used.
            return false;
        }
        match action {
            Action::SetImages { workload, images } => {
                let Some(index) = self.workloads.iter().position(|w| w.view.is_ref(workload))
                else {
                    return false;
                };
                let mut changed = false;
                for wanted in images {
                    if let Some(container) = self.workloads[index]
                        .view
                        .containers
                        .iter_mut()
                        .find(|c| c.container == wanted.container)
                        && container.image != wanted.image
                    {
                        container.image = wanted.image.clone();
                        changed = true;
                    }
                }
                if !changed {
                    return false;
                }
                let (kind, namespace, name) = (workload.kind, &workload.namespace, &workload.name);
                let mut counted = if kind == WorkloadKind::Deployment {
                    format!("{namespace}/{name}")
                } else {
                    format!("{namespace}/{kind}/{name}")
                };
                if let Some(cluster) = &workload.cluster {
                    counted = format!("{cluster}:{counted}");
                }
                *self.image_changes.entry(counted).or_default() += 1;
                let version = self.version_running(&self.workloads[index].view, releases);
                let environment = self.workloads[index].environment.clone();
                let broken = self.fails(version.as_deref(), &environment, FailureMode::Rollout);
                let observed_at = add(now, self.timing.observe);
                let done_at = add(observed_at, self.timing.rollout);
                let w = &mut self.workloads[index];
                w.view.generation += 1;
                if self.timing.observe.is_zero() {
                    w.view.observed_generation = w.view.generation;
                } else {
                    w.observed_at = Some(observed_at);
                }
                // A CronJob's next Job runs the new image: nothing rolls out, and the
                // accepted write is all there is to see.
                if w.view.kind == WorkloadKind::CronJob {
                    w.view.observed_generation = w.view.generation;
                    w.observed_at = None;
                    return true;
                }
                if w.on_delete {
                    // The old pods keep running, available, until someone deletes them.
                    w.view.rollout = RolloutState::Progressing {
                        note: Some(crate::engine::ON_DELETE_NOTE.to_owned()),
                    };
                    w.rollout_done_at = None;
                    return false;
                }
                w.view.rollout = RolloutState::Progressing { note: None };
                // Broken: the new pods crash-loop, never available, and the old ones linger.
                w.view.available = !broken;
                w.rollout_done_at = if broken { None } else { Some(done_at) };
                false
            }
            Action::SetCanary {
                stable,
                images,
                weight,
            } => {
                // The canary starts as a copy of the stable workload, then takes the
                // release's images like any image change (and rolls out, or breaks).
                let canary = crate::engine::canary::canary_of(stable);
                let created = self.find_mut(&canary).is_none();
                let Some(original) = self.workloads.iter().find(|w| w.view.is_ref(stable)) else {
                    return false;
                };
                let share = original
                    .view
                    .replicas
                    .map(|r| crate::engine::canary::canary_replicas(*weight, r));
                if created {
                    let mut copy = SimWorkload {
                        view: original.view.clone(),
                        on_delete: false,
                        environment: original.environment.clone(),
                        rollout_done_at: None,
                        observed_at: None,
                    };
                    copy.view.name = canary.name.clone();
                    copy.view.generation = 1;
                    copy.view.observed_generation = 1;
                    copy.view.rollout = RolloutState::Complete;
                    copy.view.available = true;
                    copy.view.replicas = share;
                    self.workloads.push(copy);
                }
                let rollout = self.timing.rollout;
                let scaled = self.find_mut(&canary).is_some_and(|w| {
                    if w.view.replicas == share {
                        return false;
                    }
                    // A new share: the new pods start, and are ready after a rollout.
                    w.view.replicas = share;
                    w.view.generation += 1;
                    w.view.observed_generation = w.view.generation;
                    let broken = !w.view.available && w.rollout_done_at.is_none();
                    if !broken {
                        w.view.rollout = RolloutState::Progressing { note: None };
                        w.rollout_done_at = Some(add(now, rollout));
                    }
                    true
                });
                let changed = self.apply(
                    &Action::SetImages {
                        workload: canary,
                        images: images.clone(),
                    },
                    now,
                    releases,
                );
                created || changed || scaled
            }
            Action::DeleteCanary { stable, route } => {
                // As the controller does: the route sends the canary nothing first.
                let withdrawn = route.as_ref().is_some_and(|r| {
                    self.apply(
                        &Action::SetRouteWeights {
                            route: r.route.clone(),
                            stable_service: r.stable_service.clone(),
                            canary_service: r.canary_service.clone(),
                            weight: 0,
                        },
                        now,
                        releases,
                    )
                });
                let canary = crate::engine::canary::canary_of(stable);
                let before = self.workloads.len();
                self.workloads.retain(|w| !w.view.is_ref(&canary));
                withdrawn || self.workloads.len() != before
            }
            Action::SetRouteWeights {
                route,
                stable_service,
                canary_service,
                weight,
            } => {
                let Some(view) = self.routes.get_mut(route) else {
                    return false;
                };
                let before = view.clone();
                for rule in &mut view.rules {
                    let names_both = [stable_service, canary_service]
                        .iter()
                        .all(|s| rule.iter().any(|b| &b.service == *s));
                    for backend in rule.iter_mut().filter(|_| names_both) {
                        if backend.service == *stable_service {
                            backend.weight = 100 - weight;
                        } else if backend.service == *canary_service {
                            backend.weight = *weight;
                        }
                    }
                }
                *view != before
            }
            Action::CreateJob(request) => {
                self.create_job(request, now, releases);
                false
            }
            Action::Commit(_) => false, // committed above
            Action::DeleteJob {
                cluster,
                namespace,
                name,
            } => {
                self.jobs
                    .remove(&(cluster.clone(), namespace.clone(), name.clone()));
                false
            }
        }
    }

    fn create_job(&mut self, request: &JobRequest, now: Timestamp, releases: &[ReleaseView]) {
        let key = (
            request.cluster.clone(),
            request.namespace.clone(),
            request.name.clone(),
        );
        if self.jobs.contains_key(&key) {
            return;
        }
        let release = request.labels.get(crate::engine::jobs::labels::RELEASE);
        let environment = request
            .labels
            .get(crate::engine::jobs::labels::ENVIRONMENT)
            .cloned()
            .unwrap_or_default();
        let purpose = request
            .labels
            .get(crate::engine::jobs::labels::PURPOSE)
            .map(String::as_str);
        let version = releases
            .iter()
            .find(|r| Some(&r.name) == release)
            .map(|r| r.spec.version.clone());
        let mode = if purpose == Some("pre-deploy") {
            FailureMode::PreDeploy
        } else {
            FailureMode::Test
        };
        let fails = self.fails(version.as_deref(), &environment, mode);
        let duration = job_duration(&request.spec).unwrap_or(self.timing.job);
        let view = JobView {
            cluster: key.0.clone(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            created: now,
            outcome: JobOutcome::Running,
            message: None,
        };
        self.jobs.insert(
            key,
            SimJob {
                view,
                done_at: add(now, duration),
                fails,
            },
        );
    }

    /// Replaces the set of probes that should run with those of the latest decision.
    pub fn set_probes(&mut self, requests: &[ProbeRequest], now: Timestamp) {
        let mut next = BTreeMap::new();
        for request in requests {
            // A new probe runs a second after it is asked for, then at its interval.
            let next_at = self
                .probes
                .get(&request.id)
                .map_or(add(now, Duration::from_secs(1)), |p| p.next_at);
            next.insert(
                request.id.clone(),
                SimProbe {
                    request: request.clone(),
                    next_at,
                },
            );
        }
        self.probes = next;
    }

    /// The next instant something happens by itself: a rollout or a Job finishing, a probe due.
    pub fn next_event(&self) -> Option<Timestamp> {
        let rollouts = self
            .workloads
            .iter()
            .flat_map(|w| [w.rollout_done_at, w.observed_at])
            .flatten();
        let jobs = self
            .jobs
            .values()
            .filter(|j| j.view.outcome == JobOutcome::Running)
            .map(|j| j.done_at);
        let probes = self.probes.values().map(|p| p.next_at);
        let repos = self.repos.values().filter_map(SimRepo::next_event);
        rollouts.chain(jobs).chain(probes).chain(repos).min()
    }

    /// Moves the repositories' appliers to `now`; an applier of the workloads sets their
    /// images. Whether anything changed.
    fn advance_repos(&mut self, now: Timestamp, releases: &[ReleaseView]) -> bool {
        let rollout = self.timing.rollout;
        let mut changed = false;
        let mut applied = Vec::new();
        for (environment, repo) in &mut self.repos {
            if repo.advance(now, rollout) {
                changed = true;
                if repo.applier() == Applier::Workloads {
                    applied.push((environment.clone(), repo.applied_images().clone()));
                }
            }
        }
        for (environment, images) in applied {
            for (workload, container, artifact) in self.repo_targets[&environment].clone() {
                if let Some(image) = images.get(&artifact) {
                    let images = vec![ContainerImage {
                        container,
                        image: image.clone(),
                    }];
                    self.apply(&Action::SetImages { workload, images }, now, releases);
                }
            }
        }
        changed
    }

    /// Moves the world to `now`. Returns whether anything the controller watches changed.
    pub fn advance(&mut self, now: Timestamp, releases: &[ReleaseView]) -> bool {
        let mut changed = self.advance_repos(now, releases);
        for w in &mut self.workloads {
            if w.observed_at.is_some_and(|t| t <= now) {
                w.observed_at = None;
                w.view.observed_generation = w.view.generation;
                changed = true;
            }
            if w.rollout_done_at.is_some_and(|t| t <= now) {
                w.rollout_done_at = None;
                w.view.rollout = RolloutState::Complete;
                w.view.available = true;
                changed = true;
            }
        }
        for job in self.jobs.values_mut() {
            if job.view.outcome == JobOutcome::Running && job.done_at <= now {
                job.view.outcome = if job.fails {
                    JobOutcome::Failed
                } else {
                    JobOutcome::Succeeded
                };
                job.view.message = Some(if job.fails {
                    "exit code 1: SLO not met".into()
                } else {
                    "all checks passed".into()
                });
                changed = true;
            }
        }
        let due: Vec<ProbeId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.next_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let (request, ok) = {
                let probe = &self.probes[&id];
                (probe.request.clone(), self.probe_passes(&id, releases))
            };
            let message = match (&request.target, ok) {
                (crate::engine::ProbeTarget::Http { expect_status, .. }, true) => {
                    format!("HTTP {expect_status}")
                }
                (crate::engine::ProbeTarget::Http { expect_status, .. }, false) => {
                    format!("HTTP 503, expected {expect_status}")
                }
                (crate::engine::ProbeTarget::Metric { below, above, .. }, true) => {
                    format!("value within ({above:?}, {below:?})")
                }
                (crate::engine::ProbeTarget::Metric { below, .. }, false) => format!(
                    "value {} is not below {}",
                    below.unwrap_or(0.0) * 2.0,
                    below.unwrap_or(0.0)
                ),
                (crate::engine::ProbeTarget::Webhook { .. }, true) => "HTTP 200".into(),
                (crate::engine::ProbeTarget::Webhook { .. }, false) => "HTTP 403".into(),
            };
            let outcome = crate::checks::Outcome {
                ok,
                value: None,
                message,
            };
            let (_, flipped) = self.results.record(&id, outcome, now);
            if let Some(probe) = self.probes.get_mut(&id) {
                probe.next_at = add(now, request.interval);
            }
            changed |= flipped;
        }
        changed
    }

    fn probe_passes(&self, id: &ProbeId, releases: &[ReleaseView]) -> bool {
        let running = self.versions_in(&id.environment, releases);
        let failing = |mode| {
            running
                .iter()
                .any(|v| self.fails(Some(v), &id.environment, mode))
        };
        match (id.purpose, id.kind) {
            (ProbePurpose::Verify, ProbeKind::Http) => !failing(FailureMode::Health),
            (ProbePurpose::Verify, ProbeKind::Metric) => !failing(FailureMode::Metric),
            (ProbePurpose::Gate, ProbeKind::Webhook) => {
                let version = id
                    .release
                    .as_ref()
                    .and_then(|r| releases.iter().find(|x| &x.name == r))
                    .map(|r| r.spec.version.as_str());
                !self.fails(version, &id.environment, FailureMode::Test)
            }
            (ProbePurpose::Gate, _) => !failing(FailureMode::Metric),
            (ProbePurpose::Verify, ProbeKind::Webhook) => true,
        }
    }
}

/// The `--duration` argument of a load-test Job, plus start-up time.
fn job_duration(spec: &serde_json::Value) -> Option<Duration> {
    let args = spec
        .pointer("/template/spec/containers/0/args")?
        .as_array()?;
    let position = args.iter().position(|a| a.as_str() == Some("--duration"))?;
    let duration = crate::validation::parse_duration(args.get(position + 1)?.as_str()?).ok()?;
    Some(duration + Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_parse_with_a_default_mode() {
        let f: Failure = "1.4.2@prod".parse().unwrap();
        assert_eq!(
            (f.version.as_str(), f.environment.as_str(), f.mode),
            ("1.4.2", "prod", FailureMode::Health)
        );
        let f: Failure = "2026.11.21-0945@main:test".parse().unwrap();
        assert_eq!(f.mode, FailureMode::Test);
        assert!("1.4.2".parse::<Failure>().is_err());
        assert!(
            "1.4.2@prod:explode"
                .parse::<Failure>()
                .unwrap_err()
                .contains("unknown failure")
        );
    }
}
