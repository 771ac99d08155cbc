//! What every step of a decision shares: the snapshot, the checked pipeline, lookups, and
//! the outputs collected so far.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    clock::{TimeGate, time_gate},
    decision::{Action, Event, EventType, MetricEvent, ProbeRequest, ProbeTarget, Regarding},
    jobs::JobKey,
    snapshot::{
        ApprovalView, JobView, Observation, ProbeId, ProbeKind, ProbePurpose, ReleaseView, Snapshot,
    },
};
use crate::{
    api::{BlockingGate, Decision as Verdict, OverrideRecord},
    validation::{ValidEnvironment, ValidJob, ValidMetric, ValidPipeline},
};

/// FNV-1a: the decision looks release and environment names up thousands of times, and
/// the standard SipHash was a third of its instructions (callgrind, `benches/decide.rs`).
/// The keys are names from the cluster, hashed within one decision: no flooding to guard
/// against.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by names, hashed with [`Fnv`].
pub type NameMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Shared state of one decision.
pub struct Ctx<'a> {
    /// The input.
    pub snap: &'a Snapshot,
    /// `snap.now`, truncated to whole seconds (what the API server stores).
    pub now: Timestamp,
    /// The checked spec.
    pub pipeline: &'a ValidPipeline,
    /// Releases of this pipeline, by name.
    pub releases: NameMap<&'a str, &'a ReleaseView>,
    /// Actions so far.
    pub actions: Vec<Action>,
    /// Probes wanted so far.
    pub probes: Vec<ProbeRequest>,
    /// Events so far.
    pub events: Vec<Event>,
    /// The earliest future instant that matters.
    pub wake: Option<Timestamp>,
    /// Overrides that took effect in this decision, oldest first.
    pub overrides: Vec<OverrideRecord>,
    /// Why each waiting candidate waits, by environment, then release.
    waiting: NameMap<String, NameMap<String, Vec<BlockingGate>>>,
    /// Releases superseded in an environment (by environment, then release), and by what.
    superseded: NameMap<String, NameMap<String, String>>,
    /// Approvals by the release they name, oldest first.
    approvals_by_release: NameMap<&'a str, Vec<&'a ApprovalView>>,
    /// The schedule and freeze verdict per (environment, schedule ignored): the same for
    /// every candidate, and cron arithmetic is the costliest part of a decision.
    time_gates: NameMap<(String, bool), TimeGate>,
}

impl<'a> Ctx<'a> {
    /// A fresh context for `snap`, whose spec validated as `pipeline`.
    pub fn new(snap: &'a Snapshot, pipeline: &'a ValidPipeline) -> Self {
        let releases = snap
            .releases
            .iter()
            .filter(|r| r.spec.pipeline == snap.pipeline.name)
            .map(|r| (r.name.as_str(), r))
            .collect();
        let mut approvals_by_release: NameMap<&str, Vec<&ApprovalView>> = NameMap::default();
        for approval in &snap.approvals {
            approvals_by_release
                .entry(approval.spec.release.as_str())
                .or_default()
                .push(approval);
        }
        for list in approvals_by_release.values_mut() {
            list.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        }
        Self {
            snap,
            now: truncate(snap.now),
            pipeline,
            releases,
            actions: vec![],
            probes: vec![],
            events: vec![],
            wake: None,
            overrides: vec![],
            waiting: NameMap::default(),
            superseded: NameMap::default(),
            approvals_by_release,
            time_gates: NameMap::default(),
        }
    }

    /// The newest Approval deciding `decision` on `release` in `environment` created after
    /// `after`, to the second (what the API server stores): an override asked in the
    /// second a step started counts for the step before, never for both.
    pub fn override_after(
        &self,
        decision: Verdict,
        release: &str,
        environment: &str,
        after: Timestamp,
    ) -> Option<&'a ApprovalView> {
        self.approvals_of(decision, release, environment)
            .into_iter()
            .rev()
            .find(|a| truncate(a.created) > after)
    }

    /// Records that `approval`, an override, took effect now.
    pub fn record_override(&mut self, approval: &ApprovalView) {
        self.overrides.push(OverrideRecord {
            approval: approval.name.clone(),
            decision: approval.spec.decision,
            release: approval.spec.release.clone(),
            environment: approval.spec.environment.clone(),
            requested_by: approval.spec.approver.clone(),
            at: self.now_time(),
        });
    }

    /// `now` as a status timestamp.
    pub fn now_time(&self) -> Time {
        Time(self.now)
    }

    /// Asks to be woken at `at`, if it is in the future.
    pub fn wake_at(&mut self, at: Timestamp) {
        if at > self.now && self.wake.is_none_or(|w| at < w) {
            self.wake = Some(at);
        }
    }

    /// `at` plus `duration`, saturating.
    pub fn after(at: Timestamp, duration: std::time::Duration) -> Timestamp {
        jiff::SignedDuration::try_from(duration)
            .ok()
            .and_then(|d| at.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX)
    }

    /// The schedule and freeze gates of `env` now, computed once per decision.
    pub fn time_gate(&mut self, env: &ValidEnvironment, ignore_schedule: bool) -> TimeGate {
        let key = (env.name.clone(), ignore_schedule);
        if let Some(gate) = self.time_gates.get(&key) {
            return gate.clone();
        }
        let gate = time_gate(
            &env.gates.schedule,
            &env.gates.freeze,
            ignore_schedule,
            self.now,
        );
        self.time_gates.insert(key, gate.clone());
        gate
    }

    /// Asks for the Job of `key` from a step, with the release's facts as environment
    /// variables (`GREENLIGHT_PIPELINE`, `_ENVIRONMENT`, `_RELEASE`, `_VERSION`).
    pub fn create_job(
        &mut self,
        key: &JobKey<'_>,
        cluster: Option<&str>,
        namespace: &str,
        step: &ValidJob,
    ) {
        let version = self.version_of(key.release);
        let vars = [
            ("GREENLIGHT_PIPELINE", key.pipeline),
            ("GREENLIGHT_ENVIRONMENT", key.environment),
            ("GREENLIGHT_RELEASE", key.release),
            ("GREENLIGHT_VERSION", version.as_str()),
        ];
        let mut request = key.request(cluster, namespace, &step.template, step.timeout, &vars);
        request.labels.insert(
            super::jobs::labels::PIPELINE_NAMESPACE.to_owned(),
            self.snap.pipeline.namespace.clone(),
        );
        self.actions.push(Action::CreateJob(request));
    }

    /// Asks for a Prometheus probe of `metric` for `environment`; returns its id.
    pub fn request_metric(
        &mut self,
        environment: &str,
        purpose: ProbePurpose,
        metric: &ValidMetric,
        interval: std::time::Duration,
    ) -> ProbeId {
        let id = ProbeId {
            environment: environment.to_owned(),
            purpose,
            kind: ProbeKind::Metric,
            name: metric.name.clone(),
            release: None,
        };
        self.probes.push(ProbeRequest {
            id: id.clone(),
            target: ProbeTarget::Metric {
                address: metric.address.to_string(),
                query: metric.query.clone(),
                below: metric.below,
                above: metric.above,
            },
            interval,
        });
        id
    }

    /// The observed Job with this name in this namespace of `cluster`.
    pub fn job(&self, cluster: Option<&str>, namespace: &str, name: &str) -> Option<&'a JobView> {
        self.snap
            .jobs
            .iter()
            .find(|j| j.cluster.as_deref() == cluster && j.namespace == namespace && j.name == name)
    }

    /// The latest observation of a probe.
    pub fn observation(&self, id: &ProbeId) -> Option<&'a Observation> {
        self.snap
            .observations
            .iter()
            .filter(|o| &o.probe == id)
            .max_by_key(|o| o.at)
    }

    /// Approvals of `decision` for (release, environment), oldest first.
    pub fn approvals_of(
        &self,
        decision: Verdict,
        release: &str,
        environment: &str,
    ) -> Vec<&'a ApprovalView> {
        self.approvals_by_release
            .get(release)
            .map(|list| {
                list.iter()
                    .copied()
                    .filter(|a| a.spec.decision == decision && a.spec.environment == environment)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records why `release` waits in `environment`.
    pub fn wait(&mut self, environment: &str, release: &str, blocking: Vec<BlockingGate>) {
        self.waiting
            .entry(environment.to_owned())
            .or_default()
            .insert(release.to_owned(), blocking);
    }

    /// Why `release` waits in `environment`, if it does.
    pub fn waiting_for(&self, release: &str, environment: &str) -> Option<&Vec<BlockingGate>> {
        self.waiting.get(environment)?.get(release)
    }

    /// Whether `release` waits in `environment`.
    pub fn is_waiting(&self, release: &str, environment: &str) -> bool {
        self.waiting_for(release, environment).is_some()
    }

    /// Records that `newer` supersedes `release` in `environment`.
    pub fn supersede(&mut self, environment: &str, release: &str, newer: &str) {
        self.superseded
            .entry(environment.to_owned())
            .or_default()
            .insert(release.to_owned(), newer.to_owned());
    }

    /// What superseded `release` in `environment`, if anything.
    pub fn superseded_by(&self, release: &str, environment: &str) -> Option<&String> {
        self.superseded.get(environment)?.get(release)
    }

    /// Records an Event.
    pub fn event(
        &mut self,
        regarding: Regarding,
        kind: EventType,
        reason: &'static str,
        environment: &str,
        message: String,
        metric: Option<MetricEvent>,
    ) {
        self.events.push(Event {
            regarding,
            kind,
            reason,
            message,
            environment: Some(environment.to_owned()),
            metric,
        });
    }

    /// The version of a release, or its name when the object is gone.
    pub fn version_of(&self, release: &str) -> String {
        self.releases
            .get(release)
            .map_or_else(|| release.to_owned(), |r| r.spec.version.clone())
    }
}

/// Drops sub-second precision: the API server stores times in whole seconds, so the engine
/// must decide the same way before and after a round trip.
pub fn truncate(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// `later - earlier` as a std duration (zero when negative).
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(later.duration_since(earlier)).unwrap_or_default()
}
