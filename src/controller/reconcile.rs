//! One reconcile of one Pipeline: read the world from the stores, let the engine decide,
//! write the Pipeline's status, take the actions, write the Releases' and Approvals'
//! statuses, publish the Events, and come back at the engine's next instant.
//!
//! The status is written before any action, and every action is derived from the status,
//! so a failure at any point is repaired by the next reconcile: nothing is lost.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        controller::Action as Requeue,
        events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};

use super::{
    actions::{self, DecidedStatus, Executor},
    cached_release::CachedRelease,
    clusters::Clusters,
    leader::Leadership,
    probes::Prober,
    repos::Repositories,
    sent::SentAction,
    unseen::{self, Unseen},
    world::{self, Stores},
};
use crate::{
    api::{Approval, Pipeline, PipelineStatus, Release},
    engine::{Decision, Event, EventType, JobOutcome, Regarding, Snapshot, decide, decide_with},
    metrics::{Metrics, PipelineLabels},
    validation::{ValidPipeline, validate_pipeline},
};

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write failed; the status written so far stands, the rest is redone next time.
    #[error(transparent)]
    Write(#[from] actions::Error),
}

impl Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Self::Write(e) => e.metric_label(),
        }
    }
}

/// The spec of one Pipeline generation, checked once.
type CheckedSpec = (i64, Option<Arc<ValidPipeline>>);

/// A status this replica wrote, and the resourceVersion it was decided from: until the
/// store moves past that version, the written status is the truth, not the store's.
type Written = (Option<String>, PipelineStatus);

/// Termination messages by Job (cluster, namespace, name); `None` when its Pods left none.
type JobMessages = HashMap<(Option<String>, String, String), Option<String>>;

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The reflector stores.
    pub stores: Stores,
    /// Metrics.
    pub metrics: Metrics,
    /// Who publishes the Events.
    pub reporter: Reporter,
    /// The probe scheduler.
    pub prober: Prober,
    /// Whether this replica may act.
    pub leadership: Leadership,
    /// The connections to other clusters.
    pub clusters: Arc<Clusters>,
    /// The repositories of environments in GitOps mode.
    pub repos: Repositories,
    specs: Mutex<HashMap<ObjectRef<Pipeline>, CheckedSpec>>,
    written: Mutex<HashMap<ObjectRef<Pipeline>, Written>>,
    failures: Mutex<HashMap<ObjectRef<Pipeline>, u32>>,
    /// The termination messages of each Pipeline's finished Jobs, read once per Job.
    job_messages: Mutex<HashMap<ObjectRef<Pipeline>, JobMessages>>,
    /// Whether every store has had its first full list.
    synced: std::sync::atomic::AtomicBool,
    /// Release statuses written that the store has not shown yet.
    pub unseen_releases: Unseen,
    /// Approval statuses written that the store has not shown yet.
    pub unseen_approvals: Unseen,
    /// Image changes and Job creations sent that the stores do not show yet, by
    /// Deployment and by Job: a reconcile that runs before the watch catches up decides
    /// them again, and they are not sent twice.
    pub unseen_actions: Unseen,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    /// A context over these parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        stores: Stores,
        metrics: Metrics,
        reporter: Reporter,
        prober: Prober,
        leadership: Leadership,
        clusters: Arc<Clusters>,
        repos: Repositories,
    ) -> Self {
        Self {
            client,
            stores,
            metrics,
            reporter,
            prober,
            leadership,
            clusters,
            repos,
            specs: Mutex::default(),
            written: Mutex::default(),
            failures: Mutex::default(),
            job_messages: Mutex::default(),
            synced: std::sync::atomic::AtomicBool::new(false),
            unseen_releases: Unseen::default(),
            unseen_approvals: Unseen::default(),
            unseen_actions: Unseen::default(),
        }
    }

    /// The checked spec of this generation, validating it only when the generation changed.
    fn checked_spec(
        &self,
        key: &ObjectRef<Pipeline>,
        pipeline: &Pipeline,
    ) -> Option<Arc<ValidPipeline>> {
        let generation = pipeline.metadata.generation.unwrap_or(0);
        let mut specs = lock(&self.specs);
        if let Some((checked, valid)) = specs.get(key)
            && *checked == generation
        {
            return valid.clone();
        }
        let valid = validate_pipeline(&pipeline.spec).0.map(Arc::new);
        specs.insert(key.clone(), (generation, valid.clone()));
        valid
    }

    /// The status the decision starts from: ours if the store has not caught up yet.
    fn current_status(
        &self,
        key: &ObjectRef<Pipeline>,
        pipeline: &Pipeline,
    ) -> Option<PipelineStatus> {
        let mut written = lock(&self.written);
        match written.get(key) {
            Some((version, status)) if *version == pipeline.metadata.resource_version => {
                Some(status.clone())
            }
            Some(_) => {
                written.remove(key);
                None
            }
            None => None,
        }
    }

    /// Marks the stores synced: decisions may start.
    pub fn set_synced(&self) {
        self.synced
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the stores have synced.
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// An executor acting for `pipeline` (in its other clusters too), counted and only
    /// while leading.
    fn executor(&self, pipeline: &Pipeline) -> Executor {
        let remotes = world::remotes_of(pipeline)
            .into_iter()
            .filter_map(|remote| {
                let stores = self.clusters.stores(&remote)?;
                Some(((remote.secret.name, remote.namespace), stores.client))
            })
            .collect();
        Executor::new(self.client.clone(), pipeline)
            .with_remotes(remotes)
            .with_repositories(self.repos.clone())
            .with_metrics(self.metrics.clone())
            .with_leadership(self.leadership.clone())
    }

    /// Cleans up after a deleted Pipeline, while it still leads: sends each environment's
    /// canary traffic back to the stable Service and deletes its canaries (nothing owns
    /// them: an owner reference cannot cross namespaces or clusters). What fails is logged;
    /// a canary left by a crash right here stays, labelled `greenlight.dev/canary-of`.
    pub async fn clean_up_after(&self, pipeline: &Pipeline) {
        let snap =
            self.stores
                .snapshot(pipeline, jiff::Timestamp::now(), Vec::new(), &self.clusters);
        let actions = crate::engine::canary::left_behind(&snap);
        if actions.is_empty() {
            return;
        }
        let executor = self.executor(pipeline);
        for action in &actions {
            if let Err(error) = executor.apply(action).await {
                tracing::warn!(pipeline = %ObjectRef::from_obj(pipeline), %error, "could not clean up after a deleted Pipeline");
            }
        }
    }

    /// Forgets a deleted Pipeline: its probes stop, its caches and metric series go.
    pub fn forget(&self, key: &ObjectRef<Pipeline>) {
        self.prober.set(key, &[]);
        self.clusters.use_only(key, &Default::default());
        self.repos.forget(key);
        self.metrics.forget_pipeline(PipelineLabels::new(
            key.namespace.as_deref().unwrap_or_default(),
            &key.name,
        ));
        lock(&self.specs).remove(key);
        lock(&self.written).remove(key);
        lock(&self.failures).remove(key);
        lock(&self.job_messages).remove(key);
    }

    /// Gives each finished Job in the snapshot the termination message its Pod left (what
    /// `greenlight loadtest` reports), so the engine records it with the gate test's
    /// result. Each Job's Pods are read once; the cache keeps only Jobs still present. A
    /// failed read leaves the Job's own condition message: the outcome never waits for it.
    async fn add_job_messages(
        &self,
        key: &ObjectRef<Pipeline>,
        executor: &Executor,
        snapshot: &mut Snapshot,
    ) {
        let mut known = lock(&self.job_messages).remove(key).unwrap_or_default();
        let mut current = JobMessages::new();
        for job in &mut snapshot.jobs {
            if job.outcome == JobOutcome::Running {
                continue;
            }
            let id = (job.cluster.clone(), job.namespace.clone(), job.name.clone());
            let message = match known.remove(&id) {
                Some(message) => message,
                None => match executor
                    .job_termination_message(job.cluster.as_deref(), &job.namespace, &job.name)
                    .await
                {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!(pipeline = %key, job = %job.name, %error, "no termination message");
                        None
                    }
                },
            };
            if let Some(message) = &message {
                job.message = Some(message.clone());
            }
            current.insert(id, message);
        }
        lock(&self.job_messages).insert(key.clone(), current);
    }
}

/// Reconciles one Pipeline.
pub async fn reconcile(pipeline: Arc<Pipeline>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let mut timer = ctx.metrics.reconcile("Pipeline");
    if !ctx.is_synced() {
        // Every Pipeline is reconciled once the stores have synced.
        timer.ok();
        return Ok(Requeue::await_change());
    }
    if !ctx.leadership.is_leading() {
        // A standby keeps its caches warm and acts once elected (every Pipeline is
        // reconciled then).
        timer.ok();
        return Ok(Requeue::await_change());
    }
    let key = ObjectRef::from_obj(pipeline.as_ref());
    if pipeline.metadata.deletion_timestamp.is_some() {
        ctx.forget(&key);
        timer.ok();
        return Ok(Requeue::await_change());
    }
    ctx.clusters.use_only(&key, &world::remotes_of(&pipeline));
    let now = jiff::Timestamp::now();
    let mut snapshot =
        ctx.stores
            .snapshot(&pipeline, now, ctx.prober.observations(&key), &ctx.clusters);
    if let Some(status) = ctx.current_status(&key, &pipeline) {
        snapshot.pipeline.status = status;
    }
    ctx.add_job_messages(&key, &ctx.executor(&pipeline), &mut snapshot)
        .await;
    let namespace = key.namespace.as_deref().unwrap_or_default();
    let valid = ctx.checked_spec(&key, &pipeline);
    if let Some(valid) = &valid {
        snapshot.git = ctx.repos.views(&key, valid, &snapshot.releases);
    }
    let decision = match valid {
        Some(valid) => {
            ctx.metrics
                .know_pipeline(PipelineLabels::new(namespace, &key.name), &valid);
            decide_with(&snapshot, &valid)
        }
        None => decide(&snapshot),
    };
    let result = execute(&ctx, &pipeline, &key, &snapshot.pipeline.status, &decision).await;
    match &result {
        Ok(()) => {
            timer.ok();
            lock(&ctx.failures).remove(&key);
        }
        Err(error) => timer.failed(error.metric_label()),
    }
    result?;
    Ok(requeue_at(decision.requeue_at, now))
}

/// Writes the decision: status first, then actions, then the other statuses and Events.
async fn execute(
    ctx: &Context,
    pipeline: &Pipeline,
    key: &ObjectRef<Pipeline>,
    before: &PipelineStatus,
    decision: &Decision,
) -> Result<(), Error> {
    let name = pipeline.name_any();
    let namespace = pipeline.namespace().unwrap_or_default();
    let labels = PipelineLabels::new(&namespace, &name);
    let executor = ctx.executor(pipeline);
    let status_changed = decision.pipeline_status != *before;
    if status_changed {
        executor
            .write_pipeline_status(&name, &decision.pipeline_status)
            .await?;
        lock(&ctx.written).insert(
            key.clone(),
            (
                pipeline.metadata.resource_version.clone(),
                decision.pipeline_status.clone(),
            ),
        );
        // Counted once: the next decision starts from this status and sees no transition.
        ctx.metrics.record_events(labels, decision);
    }
    ctx.metrics
        .record_status(labels, &decision.pipeline_status, decision);
    ctx.prober.set(key, &decision.probes);

    // Each action is independent: one failing does not hold back the others.
    let mut first_error = None;
    for action in &decision.actions {
        let sent = SentAction::of(action, &namespace, &ctx.stores, &ctx.clusters);
        if let Some(sent) = &sent
            && !ctx
                .unseen_actions
                .needs_write(sent.key(), sent.over(), sent.shown(), &sent.what)
        {
            continue;
        }
        match executor.apply(action).await {
            Ok(()) => {
                if let Some(sent) = &sent {
                    ctx.unseen_actions
                        .wrote(sent.key(), sent.over(), &sent.what);
                }
            }
            Err(error) => {
                tracing::warn!(pipeline = %key, %error, "action failed; retrying with backoff");
                first_error.get_or_insert(error);
            }
        }
    }
    let releases = write_statuses::<Release, _>(
        &executor,
        &ctx.stores.releases,
        &ctx.unseen_releases,
        &namespace,
        &decision.release_statuses,
        CachedRelease::status_fingerprint,
    )
    .await;
    let approvals = write_statuses::<Approval, _>(
        &executor,
        &ctx.stores.approvals,
        &ctx.unseen_approvals,
        &namespace,
        &decision.approval_statuses,
        |a| a.status.as_ref().map(unseen::fingerprint),
    )
    .await;
    for error in [releases, approvals].into_iter().flatten() {
        first_error.get_or_insert(error);
    }
    if status_changed {
        publish_events(ctx, pipeline, &decision.events).await;
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Writes the statuses of one kind that the store does not show and this replica has
/// not already written over the cached version. Each is tried; the first error is
/// returned.
async fn write_statuses<K: DecidedStatus, Cached: Resource<DynamicType = ()> + Clone>(
    executor: &Executor,
    store: &Store<Cached>,
    unseen: &Unseen,
    namespace: &str,
    statuses: &BTreeMap<String, K::Status>,
    cached_fingerprint: fn(&Cached) -> Option<u64>,
) -> Option<actions::Error> {
    let mut first_error = None;
    for (name, status) in statuses {
        // A Release or Approval deleted meanwhile needs no status.
        let Some(cached) = store.get(&ObjectRef::new(name).within(namespace)) else {
            continue;
        };
        let over = cached.meta().resource_version.clone();
        let key = (namespace, name.as_str());
        if !unseen.needs_write(key, over.as_deref(), cached_fingerprint(&cached), status) {
            continue;
        }
        match executor.write_status::<K>(name, status).await {
            Ok(()) => unseen.wrote(key, over.as_deref(), status),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error
}

/// Publishes the decision's Events. They are best effort: a lost Event loses no state.
///
/// One `Recorder` per decision: a long-lived one caches every Event it sent for six
/// minutes and scans that cache on each publish, which at 20,000 Releases costs more
/// memory and CPU than the series it would merge (the engine emits transitions, which
/// rarely repeat).
async fn publish_events(ctx: &Context, pipeline: &Pipeline, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let namespace = pipeline.namespace().unwrap_or_default();
    for event in events {
        let Some(regarding) = regarding(ctx, pipeline, &namespace, &event.regarding) else {
            continue;
        };
        let kube_event = kube_event(event);
        if let Err(error) = recorder.publish(&kube_event, &regarding).await {
            ctx.metrics.api_request("create", "events", "error");
            tracing::warn!(%error, reason = event.reason, "could not publish an Event");
        } else {
            ctx.metrics.api_request("create", "events", "ok");
        }
    }
}

fn regarding(
    ctx: &Context,
    pipeline: &Pipeline,
    namespace: &str,
    regarding: &Regarding,
) -> Option<ObjectReference> {
    match regarding {
        Regarding::Pipeline => Some(pipeline.object_ref(&())),
        Regarding::Release(name) => ctx
            .stores
            .releases
            .get(&ObjectRef::new(name).within(namespace))
            .map(|r| r.object_ref(&())),
    }
}

/// The Kubernetes Event for an engine Event (notes are limited to 1 kB).
pub fn kube_event(event: &Event) -> KubeEvent {
    let mut note = match &event.environment {
        Some(env) => format!("{env}: {}", event.message),
        None => event.message.clone(),
    };
    if note.len() > 1024 {
        let mut cut = 1021;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    KubeEvent {
        type_: match event.kind {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: event.reason.to_owned(),
        note: Some(note),
        action: event.reason.to_owned(),
        secondary: None,
    }
}

/// When to come back: at the engine's next instant (a hair after, so the clock has
/// passed it), or when something changes.
pub fn requeue_at(at: Option<jiff::Timestamp>, now: jiff::Timestamp) -> Requeue {
    match at {
        Some(at) => {
            let wait = at.duration_since(now);
            let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
            Requeue::requeue(wait + Duration::from_millis(5))
        }
        None => Requeue::await_change(),
    }
}

/// After a failure: transient errors back off (1 s doubling to 5 min); others wait for a
/// change to the Pipeline or what it watches.
pub fn error_policy(pipeline: Arc<Pipeline>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let Error::Write(write) = error;
    if !write.is_transient() {
        tracing::warn!(pipeline = %pipeline.name_any(), %error, "reconcile failed; waiting for a change");
        return Requeue::await_change();
    }
    let key = ObjectRef::from_obj(pipeline.as_ref());
    let mut failures = lock(&ctx.failures);
    let count = failures.entry(key).or_insert(0);
    *count = count.saturating_add(1);
    let delay = backoff(*count);
    tracing::warn!(pipeline = %pipeline.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}

/// 1 s, 2 s, 4 s, ... up to 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(9);
    Duration::from_secs(1 << exponent).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(300));
    }

    #[test]
    fn the_requeue_lands_just_after_the_engines_instant() {
        let now: jiff::Timestamp = "2026-11-21T09:59:59.400Z".parse().unwrap();
        let at: jiff::Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        assert_eq!(
            requeue_at(Some(at), now),
            Requeue::requeue(Duration::from_millis(605))
        );
        assert_eq!(requeue_at(None, now), Requeue::await_change());
        assert_eq!(
            requeue_at(Some(now), at),
            Requeue::requeue(Duration::from_millis(5)),
            "an instant already passed means now"
        );
    }

    #[test]
    fn long_event_notes_are_cut_at_a_character_boundary() {
        let event = Event {
            regarding: Regarding::Pipeline,
            kind: EventType::Warning,
            reason: "VerificationFailed",
            message: "é".repeat(800),
            environment: Some("prod".into()),
            metric: None,
        };
        let k = kube_event(&event);
        let note = k.note.unwrap();
        assert!(note.len() <= 1024 && note.starts_with("prod: é") && note.ends_with("..."));
        assert!(matches!(k.type_, KubeEventType::Warning));
    }
}
