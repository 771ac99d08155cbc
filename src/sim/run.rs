//! The simulation loop: the real engine, run as the controller would run it, against the
//! simulated world, with optional API errors and crashes.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;

use super::{
    git::{Applier, SimRepo},
    world::{Failure, Timing, World},
};
use crate::{
    api::{Approval, ApprovalStatus, Pipeline, PipelineStatus, Release, ReleaseStatus},
    engine::{
        Action, ApprovalView, ContainerImage, Decision, Event, PipelineView, ReleaseView, Snapshot,
        WorkloadRef, decide,
    },
    validation::{SyncSource, validate_pipeline},
};

/// Injected controller faults, driven by a seed so that runs repeat exactly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chaos {
    /// Seed of the fault generator.
    pub seed: u64,
    /// Chance, in percent, that one API call (status write or action) fails.
    pub api_error_percent: u32,
    /// Chance, in percent, that the controller crashes during one reconcile.
    pub crash_percent: u32,
}

/// How to run a simulation.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Releases that fail, where and how.
    pub failures: Vec<Failure>,
    /// Timing of rollouts and Jobs.
    pub timing: Timing,
    /// Injected faults.
    pub chaos: Chaos,
}

/// Something that happened, for the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// When.
    pub at: Timestamp,
    /// The environment concerned, if any.
    pub environment: Option<String>,
    /// The release concerned (its version), if any.
    pub version: Option<String>,
    /// CamelCase kind (`PromotionStarted`, `Waiting`, ...).
    pub kind: String,
    /// A sentence.
    pub message: String,
}

/// One reconcile, as seen by an observer (the property tests).
pub struct Step<'a> {
    /// The input.
    pub snapshot: &'a Snapshot,
    /// The output.
    pub decision: &'a Decision,
    /// Whether the status write went through.
    pub status_written: bool,
    /// The actions that reached the cluster.
    pub applied: &'a [Action],
}

/// What follows one reconcile at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// Nothing until the next event.
    Quiet,
    /// The controller's own write changed what it watches: it reconciles again.
    WatchEvent,
    /// The controller crashed: it restarts and reconciles again.
    Crashed,
}

/// A pipeline, its releases and approvals, and a simulated cluster, on a virtual clock.
pub struct Simulation {
    /// The current virtual time.
    pub now: Timestamp,
    pipeline: Pipeline,
    generation: i64,
    status: PipelineStatus,
    releases: Vec<(Release, Timestamp)>,
    approvals: Vec<(Approval, Timestamp)>,
    release_statuses: BTreeMap<String, ReleaseStatus>,
    approval_statuses: BTreeMap<String, ApprovalStatus>,
    /// The simulated cluster.
    pub world: World,
    chaos: Chaos,
    rng: u64,
    wake: Option<Timestamp>,
    retry_at: Option<Timestamp>,
    /// Everything that happened, in order.
    pub timeline: Vec<Entry>,
    waiting_shown: BTreeMap<(String, String), String>,
    /// Reconciles run so far.
    pub reconciles: u64,
}

/// The image a target runs before any release: `<artifact>:baseline`.
pub fn baseline_image(artifact: &str) -> String {
    format!("registry.example.com/{artifact}:baseline")
}

impl Simulation {
    /// A cluster with the pipeline's target workloads running baseline images.
    pub fn new(pipeline: Pipeline, start: Timestamp, options: Options) -> Self {
        let mut world = World::new(options.timing.clone(), options.failures.clone());
        if let (Some(valid), _) = validate_pipeline(&pipeline.spec) {
            for env in &valid.environments {
                for target in &env.targets {
                    let workload = WorkloadRef {
                        cluster: env.cluster.clone(),
                        kind: target.kind,
                        namespace: env.namespace.clone(),
                        name: target.name.clone(),
                    };
                    if world.has_workload(&workload) {
                        continue;
                    }
                    let container = target
                        .container
                        .clone()
                        .unwrap_or_else(|| target.name.clone());
                    let containers = vec![ContainerImage {
                        container,
                        image: baseline_image(&target.artifact),
                    }];
                    world.add_workload(&env.name, workload, containers);
                }
                if let Some(git) = &env.git {
                    let images = git
                        .layout
                        .artifacts()
                        .into_iter()
                        .map(|a| (a.to_owned(), baseline_image(a)))
                        .collect();
                    let applier = match git.sync {
                        SyncSource::Workloads => Applier::Workloads,
                        SyncSource::ArgoCd { .. } | SyncSource::Flux { .. } => Applier::SyncObject,
                    };
                    let targets = env
                        .targets
                        .iter()
                        .map(|t| {
                            let workload = WorkloadRef {
                                cluster: env.cluster.clone(),
                                kind: t.kind,
                                namespace: env.namespace.clone(),
                                name: t.name.clone(),
                            };
                            let container = t.container.clone().unwrap_or_else(|| t.name.clone());
                            (workload, container, t.artifact.clone())
                        })
                        .collect();
                    let seed = world.repo_count() as u64 + 1;
                    world.add_repo(&env.name, SimRepo::new(images, applier, seed), targets);
                }
                if let Some((route, gateway)) = crate::engine::canary::route_of(env) {
                    world.add_route(route, &gateway.stable_service, &gateway.canary_service);
                }
            }
        }
        let rng = options.chaos.seed ^ 0x9e37_79b9_7f4a_7c15;
        Self {
            now: start,
            pipeline,
            generation: 1,
            status: PipelineStatus::default(),
            releases: vec![],
            approvals: vec![],
            release_statuses: BTreeMap::new(),
            approval_statuses: BTreeMap::new(),
            world,
            chaos: options.chaos,
            rng,
            wake: None,
            retry_at: None,
            timeline: vec![],
            waiting_shown: BTreeMap::new(),
            reconciles: 0,
        }
    }

    /// Adds a Release created at `at` (it appears when the clock gets there).
    pub fn add_release(&mut self, release: Release, at: Timestamp) {
        self.releases.push((release, at));
    }

    /// Adds an Approval created at `at`.
    pub fn add_approval(&mut self, approval: Approval, at: Timestamp) {
        self.approvals.push((approval, at));
    }

    /// Changes the Pipeline's spec (a new generation).
    pub fn update_pipeline(&mut self, spec: crate::api::PipelineSpec) {
        self.pipeline.spec = spec;
        self.generation += 1;
    }

    /// The Pipeline's status as last written.
    pub fn status(&self) -> &PipelineStatus {
        &self.status
    }

    /// A Release's status as last written.
    pub fn release_status(&self, name: &str) -> Option<&ReleaseStatus> {
        self.release_statuses.get(name)
    }

    /// The Releases that exist at the current time.
    pub fn visible_releases(&self) -> Vec<ReleaseView> {
        self.releases
            .iter()
            .filter(|(_, at)| *at <= self.now)
            .map(|(r, at)| ReleaseView {
                name: r.metadata.name.clone().unwrap_or_default(),
                created: *at,
                spec: r.spec.clone(),
                status: self
                    .release_statuses
                    .get(r.metadata.name.as_deref().unwrap_or_default())
                    .cloned(),
            })
            .collect()
    }

    fn visible_approvals(&self) -> Vec<ApprovalView> {
        self.approvals
            .iter()
            .filter(|(_, at)| *at <= self.now)
            .map(|(a, at)| ApprovalView {
                name: a.metadata.name.clone().unwrap_or_default(),
                created: *at,
                spec: a.spec.clone(),
                status: self
                    .approval_statuses
                    .get(a.metadata.name.as_deref().unwrap_or_default())
                    .cloned(),
            })
            .collect()
    }

    /// What the controller would read now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            now: self.now,
            pipeline: PipelineView {
                name: self.pipeline.metadata.name.clone().unwrap_or_default(),
                namespace: self
                    .pipeline
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                generation: self.generation,
                spec: self.pipeline.spec.clone(),
                status: self.status.clone(),
            },
            releases: self.visible_releases(),
            approvals: self.visible_approvals(),
            workloads: self.world.workloads(),
            jobs: self.world.jobs(),
            routes: self.world.routes(),
            observations: self.world.observations(),
            unreachable: self.world.unreachable(),
            git: self.world.git_views(&self.visible_releases()),
        }
    }

    fn roll(&mut self, percent: u32) -> bool {
        // splitmix64: small, fast and the same everywhere.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        percent > 0 && (z % 100) < u64::from(percent)
    }

    /// Reconciles once at the current time, as the controller would: decide, write the
    /// status, then take the actions; each may fail or the controller may crash between.
    /// Returns whether the controller crashed.
    pub fn reconcile(&mut self, observer: &mut dyn FnMut(&Step<'_>)) -> bool {
        self.reconcile_once(observer) == After::Crashed
    }

    fn reconcile_once(&mut self, observer: &mut dyn FnMut(&Step<'_>)) -> After {
        self.reconciles += 1;
        let snapshot = self.snapshot();
        let decision = decide(&snapshot);
        let crash = self.roll(self.chaos.crash_percent);
        let crash_point = if crash {
            Some(self.rng as usize % (decision.actions.len() + 2))
        } else {
            None
        };
        let status_fails = crash_point == Some(0) || self.roll(self.chaos.api_error_percent);
        let mut applied = Vec::new();
        let mut settled_at_once = false;
        if !status_fails {
            self.status = decision.pipeline_status.clone();
            self.release_statuses
                .extend(decision.release_statuses.clone());
            self.approval_statuses
                .extend(decision.approval_statuses.clone());
            let releases = self.visible_releases();
            for (i, action) in decision.actions.iter().enumerate() {
                if crash_point == Some(i + 1) {
                    break;
                }
                if self.roll(self.chaos.api_error_percent) {
                    self.retry_at = Some(self.now + jiff::SignedDuration::from_secs(2));
                    continue;
                }
                settled_at_once |= self.world.apply(action, self.now, &releases);
                applied.push(action.clone());
            }
            self.world.set_probes(&decision.probes, self.now);
            self.record(&decision);
        }
        if status_fails && crash_point.is_none() {
            // The status write failed: back off, then try again.
            self.retry_at = Some(self.now + jiff::SignedDuration::from_secs(2));
        }
        self.wake = decision.requeue_at;
        observer(&Step {
            snapshot: &snapshot,
            decision: &decision,
            status_written: !status_fails,
            applied: &applied,
        });
        if crash {
            After::Crashed
        } else if settled_at_once {
            After::WatchEvent
        } else {
            After::Quiet
        }
    }

    fn record(&mut self, decision: &Decision) {
        for event in &decision.events {
            let entry = self.entry_for(event);
            // An Event about the Pipeline and its copy about the Release are one entry.
            let twin = self
                .timeline
                .iter_mut()
                .rev()
                .take_while(|e| e.at == entry.at)
                .find(|e| {
                    e.kind == entry.kind
                        && e.environment == entry.environment
                        && e.message == entry.message
                });
            match twin {
                Some(twin) => {
                    if twin.version.is_none() {
                        twin.version = entry.version;
                    }
                }
                None => self.timeline.push(entry),
            }
        }
        for (name, status) in &decision.release_statuses {
            let version = self
                .releases
                .iter()
                .find(|(r, _)| r.metadata.name.as_deref() == Some(name))
                .map(|(r, _)| r.spec.version.clone());
            for env in &status.environments {
                let key = (name.clone(), env.name.clone());
                let shown = if env.state == crate::api::ReleaseEnvironmentState::Waiting {
                    env.blocked_by.first().map(|b| {
                        let until = b
                            .next_open
                            .as_ref()
                            .map(|t| format!(" until {}", super::timeline::clock(t.0)))
                            .unwrap_or_default();
                        format!(
                            "{} waits for {}{until}: {}",
                            version.as_deref().unwrap_or(name),
                            b.gate,
                            b.reason
                        )
                    })
                } else {
                    None
                };
                let Some(shown) = shown else {
                    self.waiting_shown.remove(&key);
                    continue;
                };
                if self.waiting_shown.get(&key) != Some(&shown) {
                    self.timeline.push(Entry {
                        at: self.now,
                        environment: Some(env.name.clone()),
                        version: version.clone(),
                        kind: "Waiting".into(),
                        message: shown.clone(),
                    });
                    self.waiting_shown.insert(key, shown);
                }
            }
        }
    }

    fn entry_for(&self, event: &Event) -> Entry {
        let version = match &event.regarding {
            crate::engine::Regarding::Release(name) => self
                .releases
                .iter()
                .find(|(r, _)| r.metadata.name.as_deref() == Some(name))
                .map(|(r, _)| r.spec.version.clone()),
            crate::engine::Regarding::Pipeline => None,
        };
        Entry {
            at: self.now,
            environment: event.environment.clone(),
            version,
            kind: event.reason.to_owned(),
            message: event.message.clone(),
        }
    }

    /// The next instant anything can happen.
    fn next_instant(&self) -> Option<Timestamp> {
        let arrivals = self
            .releases
            .iter()
            .map(|(_, at)| *at)
            .chain(self.approvals.iter().map(|(_, at)| *at))
            .filter(|at| *at > self.now);
        [self.wake, self.retry_at, self.world.next_event()]
            .into_iter()
            .flatten()
            .chain(arrivals)
            .filter(|t| *t > self.now)
            .min()
    }

    /// Runs until `end`, reconciling whenever something changed or the engine asked.
    pub fn run_until(&mut self, end: Timestamp, observer: &mut dyn FnMut(&Step<'_>)) {
        self.settle(observer);
        while let Some(next) = self.next_instant() {
            if next > end {
                break;
            }
            self.now = next;
            let scheduled = self.wake == Some(next) || self.retry_at == Some(next);
            if self.retry_at.is_some_and(|t| t <= next) {
                self.retry_at = None;
            }
            let arrived = self.releases.iter().any(|(_, at)| *at == next)
                || self.approvals.iter().any(|(_, at)| *at == next);
            let releases = self.visible_releases();
            let changed = self.world.advance(next, &releases);
            if scheduled || arrived || changed {
                self.settle(observer);
            }
        }
        self.now = end.max(self.now);
    }

    /// Reconciles; after a crash the controller restarts at once and reconciles again, and
    /// so it does when its own write changed what it sees at once.
    fn settle(&mut self, observer: &mut dyn FnMut(&Step<'_>)) {
        for _ in 0..32 {
            if self.reconcile_once(observer) == After::Quiet {
                return;
            }
        }
    }

    /// Another cluster's namespace becomes unusable (`Some(why)`) or usable again, now:
    /// the controller's connection reports it, and the Pipeline is reconciled.
    pub fn set_unreachable(&mut self, cluster: &str, namespace: &str, why: Option<&str>) {
        self.world.set_unreachable(cluster, namespace, why);
        self.settle(&mut |_| {});
    }

    /// Runs for `duration` from now.
    pub fn run_for(&mut self, duration: Duration, observer: &mut dyn FnMut(&Step<'_>)) {
        let end = self.now + jiff::SignedDuration::try_from(duration).unwrap_or_default();
        self.run_until(end, observer);
    }
}
