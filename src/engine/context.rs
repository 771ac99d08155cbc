//! What every step of a decision shares: the snapshot, the checked pipeline, lookups, and
//! the outputs collected so far.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    decision::{Action, Event, EventType, MetricEvent, ProbeRequest, Regarding},
    snapshot::{ApprovalView, JobView, Observation, ProbeId, ReleaseView, Snapshot},
};
use crate::{
    api::{BlockingGate, Decision as Verdict},
    validation::ValidPipeline,
};

/// Shared state of one decision.
pub struct Ctx<'a> {
    /// The input.
    pub snap: &'a Snapshot,
    /// `snap.now`, truncated to whole seconds (what the API server stores).
    pub now: Timestamp,
    /// The checked spec.
    pub pipeline: &'a ValidPipeline,
    /// Releases of this pipeline, by name.
    pub releases: HashMap<&'a str, &'a ReleaseView>,
    /// Actions so far.
    pub actions: Vec<Action>,
    /// Probes wanted so far.
    pub probes: Vec<ProbeRequest>,
    /// Events so far.
    pub events: Vec<Event>,
    /// The earliest future instant that matters.
    pub wake: Option<Timestamp>,
    /// Why each waiting candidate waits, by (release, environment).
    pub waiting: BTreeMap<(String, String), Vec<BlockingGate>>,
    /// Releases superseded in an environment, by (release, environment), with the newer one.
    pub superseded: BTreeMap<(String, String), String>,
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
        Self {
            snap,
            now: truncate(snap.now),
            pipeline,
            releases,
            actions: vec![],
            probes: vec![],
            events: vec![],
            wake: None,
            waiting: BTreeMap::new(),
            superseded: BTreeMap::new(),
        }
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

    /// The observed Job with this name in this namespace.
    pub fn job(&self, namespace: &str, name: &str) -> Option<&'a JobView> {
        self.snap
            .jobs
            .iter()
            .find(|j| j.namespace == namespace && j.name == name)
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
        let mut found: Vec<&ApprovalView> = self
            .snap
            .approvals
            .iter()
            .filter(|a| {
                a.spec.decision == decision
                    && a.spec.release == release
                    && a.spec.environment == environment
            })
            .collect();
        found.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        found
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
