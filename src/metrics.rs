//! The Prometheus metrics of SPEC.md "Observability", on one registry, fed by the engine's
//! decisions. Labels are bounded: namespace, pipeline, environment, gate, trigger and
//! result names, never a release or version, except on `greenlight_environment_info` (one
//! series per environment, replaced when the environment moves).
//!
//! Every series of a known Pipeline exists from its first decision, counters at 0 (see
//! [`Metrics::know_pipeline`]): after a restart, `increase()` sees the first rollback, and
//! the dashboard shows 0 rather than "No data".

use std::time::{Duration, Instant};

mod zeros;

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::{
    api::PipelineStatus,
    engine::{Decision, GATES, MetricEvent, ROLLBACK_TRIGGERS, gates_that_can_block},
    validation::ValidPipeline,
};
use zeros::{Shape, ZeroFamily};

/// Buckets for promotion, lead and restore times: from a minute to a week.
/// Every `result` of `greenlight_canary_steps_total`.
const CANARY_STEP_RESULTS: [&str; 2] = ["passed", "aborted"];

const SLOW_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 43_200.0, 86_400.0, 172_800.0, 604_800.0,
];

/// The results a promotion can end with (`greenlight_promotions_total{result}`).
const PROMOTION_RESULTS: [crate::api::PromotionResult; 4] = [
    crate::api::PromotionResult::Succeeded,
    crate::api::PromotionResult::Failed,
    crate::api::PromotionResult::RolledBack,
    crate::api::PromotionResult::Superseded,
];

/// A Pipeline's identity in labels: names are unique only within a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineLabels<'a> {
    /// The Pipeline's namespace.
    pub namespace: &'a str,
    /// The Pipeline's name.
    pub pipeline: &'a str,
}

impl<'a> PipelineLabels<'a> {
    /// The labels of the Pipeline `namespace/pipeline`.
    pub fn new(namespace: &'a str, pipeline: &'a str) -> Self {
        Self {
            namespace,
            pipeline,
        }
    }

    fn owned(self) -> (String, String) {
        (self.namespace.to_owned(), self.pipeline.to_owned())
    }
}

/// (namespace, pipeline, environment).
type EnvironmentKey = (String, String, String);

/// When the oldest candidate started waiting, by environment and gate.
type BlockedSince = std::collections::BTreeMap<(EnvironmentKey, String), jiff::Timestamp>;

/// What each environment's gauges say: set into the registry only while it is scraped.
#[derive(Debug)]
struct EnvironmentGauges {
    /// The `version` label of `greenlight_environment_info` (`baseline` before any).
    version: String,
    /// Its `release` label (empty before any).
    release: String,
    /// `greenlight_environment_healthy`.
    healthy: bool,
    /// `greenlight_environment_degraded`.
    degraded: bool,
    /// `greenlight_canary_weight`.
    canary_weight: u32,
}

/// The gauges of each environment.
type Environments = std::collections::BTreeMap<EnvironmentKey, EnvironmentGauges>;

/// Since when a rollout has not been observed, by environment.
type UnobservedSince = std::collections::BTreeMap<EnvironmentKey, jiff::Timestamp>;

/// Each known Pipeline's environments and the gates that can block each: the series
/// created at 0 by [`Metrics::know_pipeline`].
type KnownPipelines =
    std::collections::BTreeMap<(String, String), Vec<(String, Vec<&'static str>)>>;

/// Every Greenlight metric.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconcile_total: IntCounterVec,
    reconcile_duration: HistogramVec,
    environment_info: IntGaugeVec,
    environment_healthy: IntGaugeVec,
    environment_degraded: IntGaugeVec,
    canary_weight: IntGaugeVec,
    promotions_total: IntCounterVec,
    rollbacks_total: IntCounterVec,
    canary_steps_total: IntCounterVec,
    canary_step_duration: HistogramVec,
    promotion_duration: HistogramVec,
    lead_time: HistogramVec,
    time_to_restore: HistogramVec,
    promotion_blocked: GaugeVec,
    rollout_unobserved: GaugeVec,
    drift_repairs_total: IntCounterVec,
    drift_fights_total: IntCounterVec,
    gate_evaluations_total: IntCounterVec,
    api_requests_total: IntCounterVec,
    cluster_connected: IntGaugeVec,
    cluster_failures_total: IntCounterVec,
    /// When the oldest candidate started waiting, by (pipeline, environment, gate): the
    /// blocked-time gauge is computed from it when scraped, so it never goes stale.
    blocked_since: std::sync::Arc<std::sync::Mutex<BlockedSince>>,
    /// What each environment's info, health and Degraded gauges say. The registry holds
    /// those series only while a scrape encodes them: as registry children they cost
    /// about 700 bytes each, 11 MB at 5,000 environments (heaptrack), here a tenth.
    environments: std::sync::Arc<std::sync::Mutex<Environments>>,
    /// The Pipelines whose series exist, with their environments and gates.
    known: std::sync::Arc<std::sync::Mutex<KnownPipelines>>,
    /// Since when each environment's rollout waits for its workload controller to observe
    /// the new spec: the lag gauge is computed from it when scraped.
    unobserved_since: std::sync::Arc<std::sync::Mutex<UnobservedSince>>,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes every series of `vec` whose `namespace` and `pipeline` labels are `pipeline`'s.
fn remove_pipeline<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    pipeline: PipelineLabels<'_>,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: std::collections::HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get("pipeline") == Some(&pipeline.pipeline)
                && labels.get("namespace") == Some(&pipeline.namespace)
            {
                let _ = vec.remove(&labels);
            }
        }
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("metric definitions are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("metric definitions are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric defined.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconcile_total = counter(
            &registry,
            "greenlight_reconcile_total",
            "Reconciles by kind and result (ok or an error reason).",
            &["kind", "result"],
        );
        let reconcile_duration = histogram(
            &registry,
            "greenlight_reconcile_duration_seconds",
            "Time one reconcile took.",
            &["kind"],
            vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        );
        let environment_info = IntGaugeVec::new(
            Opts::new(
                "greenlight_environment_info",
                "1 for the release each environment runs.",
            ),
            &["namespace", "pipeline", "environment", "version", "release"],
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(environment_info.clone()))
            .expect("registered once");
        let environment_healthy = IntGaugeVec::new(
            Opts::new(
                "greenlight_environment_healthy",
                "1 while the environment is healthy, else 0.",
            ),
            &["namespace", "pipeline", "environment"],
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(environment_healthy.clone()))
            .expect("registered once");
        // Not in SPEC's list, but its alert (a Degraded environment) needs a series.
        let environment_degraded = IntGaugeVec::new(
            Opts::new(
                "greenlight_environment_degraded",
                "1 while the environment is Degraded (a failed rollback, or a failed release held with rollback off): nothing enters until a person acts.",
            ),
            &["namespace", "pipeline", "environment"],
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(environment_degraded.clone()))
            .expect("registered once");
        let canary_weight = IntGaugeVec::new(
            Opts::new(
                "greenlight_canary_weight",
                "The canary's share, in percent, of the canary step under way in each environment (of the route's traffic with rollout.gatewayAPI, else of the pods); 0 outside a canary step.",
            ),
            &["namespace", "pipeline", "environment"],
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(canary_weight.clone()))
            .expect("registered once");
        let promotions_total = counter(
            &registry,
            "greenlight_promotions_total",
            "Promotions by how they ended: succeeded, failed, rolled_back, superseded.",
            &["namespace", "pipeline", "environment", "result"],
        );
        let rollbacks_total = counter(
            &registry,
            "greenlight_rollbacks_total",
            "Rollbacks by trigger: verification, unhealthy, manual.",
            &["namespace", "pipeline", "environment", "trigger"],
        );
        let canary_steps_total = counter(
            &registry,
            "greenlight_canary_steps_total",
            "Canary steps by how they ended: passed (held their pause, checks passing) or aborted.",
            &["namespace", "pipeline", "environment", "result"],
        );
        let canary_step_duration = histogram(
            &registry,
            "greenlight_canary_step_duration_seconds",
            "A canary step's start to its end, passed or aborted.",
            &["namespace", "pipeline", "environment"],
            SLOW_BUCKETS.to_vec(),
        );
        let promotion_duration = histogram(
            &registry,
            "greenlight_promotion_duration_seconds",
            "Deploy start to verified.",
            &["namespace", "pipeline", "environment"],
            SLOW_BUCKETS.to_vec(),
        );
        let lead_time = histogram(
            &registry,
            "greenlight_lead_time_seconds",
            "Release created to healthy in the environment.",
            &["namespace", "pipeline", "environment"],
            SLOW_BUCKETS.to_vec(),
        );
        let time_to_restore = histogram(
            &registry,
            "greenlight_time_to_restore_seconds",
            "Failure to healthy again.",
            &["namespace", "pipeline", "environment"],
            SLOW_BUCKETS.to_vec(),
        );
        let promotion_blocked = GaugeVec::new(
            Opts::new("greenlight_promotion_blocked_seconds", "Age of the oldest candidate waiting for an environment, by the gate that blocks it."),
            &["namespace", "pipeline", "environment", "gate"],
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(promotion_blocked.clone()))
            .expect("registered once");
        // Not in SPEC's list: a control plane that lags behind (issue: a Deployment
        // controller minutes behind) holds rollouts without failing them; this says how long.
        let rollout_unobserved = GaugeVec::new(
            Opts::new(
                "greenlight_rollout_unobserved_seconds",
                "How long the environment's rollout has waited for its workload controller to observe the new spec (0 when none waits). The progress deadline starts only once it has.",
            ),
            &["namespace", "pipeline", "environment"],
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(rollout_unobserved.clone()))
            .expect("registered once");
        let drift_repairs_total = counter(
            &registry,
            "greenlight_drift_repairs_total",
            "Drifted images restored.",
            &["namespace", "pipeline", "environment"],
        );
        let drift_fights_total = counter(
            &registry,
            "greenlight_drift_fights_total",
            "Times drift repair stopped because another field manager kept setting the images back.",
            &["namespace", "pipeline", "environment"],
        );
        let gate_evaluations_total = counter(
            &registry,
            "greenlight_gate_evaluations_total",
            "Gate evaluations by gate and result (pass or block).",
            &["gate", "result"],
        );
        // Not in SPEC's list: every API call the controller makes is counted here.
        let api_requests_total = counter(
            &registry,
            "greenlight_api_requests_total",
            "Kubernetes API calls made by the controller, by verb, resource and result.",
            &["verb", "resource", "result"],
        );
        // Not in SPEC's list: environments in other clusters (issue "Targets").
        let cluster_labels = &["namespace", "cluster", "target_namespace"];
        let cluster_connected = IntGaugeVec::new(
            Opts::new(
                "greenlight_cluster_connected",
                "1 while the connection to a target namespace of another cluster (by its kubeconfig Secret's namespace and name) is usable, else 0.",
            ),
            cluster_labels,
        )
        .expect("metric definitions are valid");
        registry
            .register(Box::new(cluster_connected.clone()))
            .expect("registered once");
        let cluster_failures_total = counter(
            &registry,
            "greenlight_cluster_connection_failures_total",
            "Failed attempts to use another cluster (unreadable Secret, no answer, refused access, a failed watch); each is retried with backoff.",
            cluster_labels,
        );
        Self {
            registry,
            cluster_connected,
            cluster_failures_total,
            reconcile_total,
            reconcile_duration,
            environment_info,
            environment_healthy,
            environment_degraded,
            canary_weight,
            promotions_total,
            rollbacks_total,
            canary_steps_total,
            canary_step_duration,
            promotion_duration,
            lead_time,
            time_to_restore,
            promotion_blocked,
            rollout_unobserved,
            drift_repairs_total,
            drift_fights_total,
            gate_evaluations_total,
            api_requests_total,
            blocked_since: Default::default(),
            environments: Default::default(),
            known: Default::default(),
            unobserved_since: Default::default(),
        }
    }

    /// Whether the connection to `target_namespace` of the cluster whose kubeconfig is the
    /// Secret `namespace/cluster` is usable now.
    pub fn cluster_connected(
        &self,
        (namespace, cluster, target_namespace): (&str, &str, &str),
        connected: bool,
    ) {
        self.cluster_connected
            .with_label_values(&[namespace, cluster, target_namespace])
            .set(i64::from(connected));
        // The failure counter exists from the first report, at 0.
        self.cluster_failures_total
            .with_label_values(&[namespace, cluster, target_namespace]);
    }

    /// One failed attempt to use that connection.
    pub fn cluster_failed(&self, (namespace, cluster, target_namespace): (&str, &str, &str)) {
        self.cluster_failures_total
            .with_label_values(&[namespace, cluster, target_namespace])
            .inc();
    }

    /// The connection is dropped: its series go.
    pub fn forget_cluster(&self, (namespace, cluster, target_namespace): (&str, &str, &str)) {
        let labels = [namespace, cluster, target_namespace];
        let _ = self.cluster_connected.remove_label_values(&labels);
        let _ = self.cluster_failures_total.remove_label_values(&labels);
    }

    /// Starts timing a reconcile of `kind`; the guard records it when dropped.
    pub fn reconcile(&self, kind: &'static str) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            kind,
            started: Instant::now(),
            result: "error",
        }
    }

    /// Counts one Kubernetes API call; `result` is `ok`, `timeout`, or the HTTP status class.
    pub fn api_request(&self, verb: &'static str, resource: &'static str, result: &'static str) {
        self.api_requests_total
            .with_label_values(&[verb, resource, result])
            .inc();
    }

    /// Makes every series of `pipeline`'s environments exist at 0 (each promotion result,
    /// rollback trigger and gate its spec allows) from its first decision on. They are
    /// written at scrape time until their first event (see `zeros`), so that a known
    /// environment costs a name here, not a registry entry per series. Cheap when
    /// nothing changed since the last call.
    pub fn know_pipeline(&self, pipeline: PipelineLabels<'_>, spec: &ValidPipeline) {
        let environments: Vec<(String, Vec<&'static str>)> = spec
            .environments
            .iter()
            .map(|env| (env.name.clone(), gates_that_can_block(env)))
            .collect();
        let mut known = lock(&self.known);
        let key = pipeline.owned();
        if known.get(&key) == Some(&environments) {
            return;
        }
        for gate in GATES {
            for result in ["pass", "block"] {
                self.gate_evaluations_total
                    .with_label_values(&[gate, result]);
            }
        }
        known.insert(key, environments);
    }

    /// Counts what a decision's Events mean. Call once per decision whose status was
    /// written, so that nothing is counted twice.
    pub fn record_events(&self, pipeline: PipelineLabels<'_>, decision: &Decision) {
        let PipelineLabels {
            namespace,
            pipeline,
        } = pipeline;
        for event in &decision.events {
            let (Some(metric), Some(environment)) = (&event.metric, &event.environment) else {
                continue;
            };
            let labels = [namespace, pipeline, environment.as_str()];
            match metric {
                MetricEvent::PromotionFinished {
                    result,
                    duration,
                    lead_time,
                } => {
                    self.promotions_total
                        .with_label_values(&[namespace, pipeline, environment, result])
                        .inc();
                    if let Some(d) = duration {
                        self.promotion_duration
                            .with_label_values(&labels)
                            .observe(d.as_secs_f64());
                    }
                    if let Some(d) = lead_time {
                        self.lead_time
                            .with_label_values(&labels)
                            .observe(d.as_secs_f64());
                    }
                }
                MetricEvent::Rollback { trigger } => self
                    .rollbacks_total
                    .with_label_values(&[namespace, pipeline, environment, trigger])
                    .inc(),
                MetricEvent::CanaryStep { passed, duration } => {
                    let result = if *passed { "passed" } else { "aborted" };
                    self.canary_steps_total
                        .with_label_values(&[namespace, pipeline, environment, result])
                        .inc();
                    self.canary_step_duration
                        .with_label_values(&labels)
                        .observe(duration.as_secs_f64());
                }
                MetricEvent::Restored { after } => self
                    .time_to_restore
                    .with_label_values(&labels)
                    .observe(after.as_secs_f64()),
                MetricEvent::DriftRepaired => {
                    self.drift_repairs_total.with_label_values(&labels).inc()
                }
                MetricEvent::DriftFight => self.drift_fights_total.with_label_values(&labels).inc(),
                MetricEvent::GatesPassed { gates } => {
                    for gate in gates {
                        self.gate_evaluations_total
                            .with_label_values(&[gate, "pass"])
                            .inc();
                    }
                }
            }
        }
    }

    /// Sets the gauges from a pipeline's status and its waiting candidates.
    pub fn record_status(
        &self,
        pipeline: PipelineLabels<'_>,
        status: &PipelineStatus,
        decision: &Decision,
    ) {
        let PipelineLabels {
            namespace,
            pipeline: name,
        } = pipeline;
        for env in &status.environments {
            let (version, release) = env.current.as_ref().map_or(("baseline", ""), |c| {
                (c.version.as_str(), c.release.as_str())
            });
            let key = (namespace.to_owned(), name.to_owned(), env.name.clone());
            lock(&self.environments).insert(
                key.clone(),
                EnvironmentGauges {
                    version: version.to_owned(),
                    release: release.to_owned(),
                    healthy: env.healthy == Some(true),
                    degraded: env.phase == Some(crate::api::EnvironmentPhase::Degraded),
                    canary_weight: env
                        .promotion
                        .as_ref()
                        .and_then(|p| p.canary_weight)
                        .unwrap_or(0),
                },
            );
            let waiting = env
                .promotion
                .as_ref()
                .and_then(|p| p.unobserved_since.as_ref());
            let mut unobserved = lock(&self.unobserved_since);
            match waiting {
                Some(since) => unobserved.insert(key, since.0),
                None => unobserved.remove(&key),
            };
        }
        let mut since = lock(&self.blocked_since);
        since.retain(|((ns, p, _), _), _| (ns.as_str(), p.as_str()) != (namespace, name));
        for status in decision.release_statuses.values() {
            for env in status
                .environments
                .iter()
                .filter(|e| e.state == crate::api::ReleaseEnvironmentState::Waiting)
            {
                let (Some(waiting_since), Some(gate)) = (&env.since, env.blocked_by.first()) else {
                    continue;
                };
                let key = (
                    (namespace.to_owned(), name.to_owned(), env.name.clone()),
                    gate.gate.clone(),
                );
                let oldest = since.entry(key).or_insert(waiting_since.0);
                *oldest = (*oldest).min(waiting_since.0);
                self.gate_evaluations_total
                    .with_label_values(&[&gate.gate, "block"])
                    .inc();
            }
        }
    }

    /// Drops every series of a deleted Pipeline, so that its environments no longer
    /// show (or alert) and the label set stays bounded by the Pipelines that exist.
    pub fn forget_pipeline(&self, pipeline: PipelineLabels<'_>) {
        let owned = pipeline.owned();
        let same = |ns: &String, p: &String| (ns, p) == (&owned.0, &owned.1);
        lock(&self.known).remove(&owned);
        lock(&self.environments).retain(|(ns, p, _), _| !same(ns, p));
        lock(&self.blocked_since).retain(|((ns, p, _), _), _| !same(ns, p));
        lock(&self.unobserved_since).retain(|(ns, p, _), _| !same(ns, p));
        remove_pipeline(&self.promotions_total, pipeline);
        remove_pipeline(&self.rollbacks_total, pipeline);
        remove_pipeline(&self.canary_steps_total, pipeline);
        remove_pipeline(&self.canary_step_duration, pipeline);
        remove_pipeline(&self.promotion_duration, pipeline);
        remove_pipeline(&self.lead_time, pipeline);
        remove_pipeline(&self.time_to_restore, pipeline);
        remove_pipeline(&self.drift_repairs_total, pipeline);
        remove_pipeline(&self.drift_fights_total, pipeline);
    }

    /// Drops the per-environment gauges (what runs where, health, Degraded, blocked
    /// time): called when this replica loses the Lease, so that only the leader reports
    /// environments. Counters stay (they count what this replica did); the new leader's
    /// first decisions set the gauges there, and again here if it is elected back.
    pub fn forget_environments(&self) {
        lock(&self.environments).clear();
        lock(&self.blocked_since).clear();
        lock(&self.known).clear();
        lock(&self.unobserved_since).clear();
    }

    /// The text exposition format served on `/metrics`.
    pub fn render(&self) -> String {
        self.render_at(jiff::Timestamp::now())
    }

    /// [`Metrics::render`] as of `now` (the simulator's clock, in tests).
    pub fn render_at(&self, now: jiff::Timestamp) -> String {
        let age = |since: &jiff::Timestamp| {
            Duration::try_from(now.duration_since(*since))
                .unwrap_or(Duration::ZERO)
                .as_secs_f64()
        };
        // The gauges computed from what the decisions recorded exist in the registry only
        // during this scrape: set, gathered, and cleared again. Holding the environments
        // for all of it keeps two scrapes from clearing each other's.
        let environments = lock(&self.environments);
        for (((namespace, pipeline, environment), gate), since) in lock(&self.blocked_since).iter()
        {
            self.promotion_blocked
                .with_label_values(&[namespace, pipeline, environment, gate])
                .set(age(since));
        }
        for ((namespace, pipeline, environment), since) in lock(&self.unobserved_since).iter() {
            self.rollout_unobserved
                .with_label_values(&[namespace, pipeline, environment])
                .set(age(since));
        }
        for ((namespace, pipeline, environment), gauges) in environments.iter() {
            let labels = [namespace.as_str(), pipeline, environment];
            self.environment_info
                .with_label_values(&[
                    namespace,
                    pipeline,
                    environment,
                    &gauges.version,
                    &gauges.release,
                ])
                .set(1);
            self.environment_healthy
                .with_label_values(&labels)
                .set(i64::from(gauges.healthy));
            self.environment_degraded
                .with_label_values(&labels)
                .set(i64::from(gauges.degraded));
            self.canary_weight
                .with_label_values(&labels)
                .set(i64::from(gauges.canary_weight));
        }
        let gathered = self.registry.gather();
        for gauge in [
            &self.environment_info,
            &self.environment_healthy,
            &self.environment_degraded,
            &self.canary_weight,
        ] {
            gauge.reset();
        }
        self.promotion_blocked.reset();
        self.rollout_unobserved.reset();
        drop(environments);
        zeros::encode(&gathered, self.zero_families())
    }

    /// Every series a known Pipeline's environments have, for [`zeros::encode`] to write
    /// at 0 where the registry has none yet.
    fn zero_families(&self) -> Vec<ZeroFamily> {
        use prometheus::core::Collector;
        let known = lock(&self.known);
        let environments = || {
            known
                .iter()
                .flat_map(|((namespace, pipeline), environments)| {
                    environments.iter().map(move |(environment, gates)| {
                        let labels = vec![
                            ("namespace", namespace.clone()),
                            ("pipeline", pipeline.clone()),
                            ("environment", environment.clone()),
                        ];
                        (labels, gates)
                    })
                })
        };
        let with = |extra: &'static str, values: &[&'static str]| {
            environments()
                .flat_map(|(labels, _)| {
                    values.iter().map(move |value| {
                        let mut labels = labels.clone();
                        labels.push((extra, (*value).to_owned()));
                        labels
                    })
                })
                .collect::<Vec<_>>()
        };
        let family = |collector: &dyn Collector, shape, series| {
            let desc = collector.desc()[0];
            ZeroFamily {
                name: desc.fq_name.clone(),
                help: desc.help.clone(),
                shape,
                series,
            }
        };
        let plain = || environments().map(|(labels, _)| labels).collect::<Vec<_>>();
        let results: Vec<&'static str> = PROMOTION_RESULTS.iter().map(|r| r.label()).collect();
        let blocked = environments()
            .flat_map(|(labels, gates)| {
                gates.iter().map(move |gate| {
                    let mut labels = labels.clone();
                    labels.push(("gate", (*gate).to_owned()));
                    labels
                })
            })
            .collect();
        vec![
            family(
                &self.promotions_total,
                Shape::Counter,
                with("result", &results),
            ),
            family(
                &self.rollbacks_total,
                Shape::Counter,
                with("trigger", &ROLLBACK_TRIGGERS),
            ),
            family(
                &self.canary_steps_total,
                Shape::Counter,
                with("result", &CANARY_STEP_RESULTS),
            ),
            family(
                &self.canary_step_duration,
                Shape::Histogram(SLOW_BUCKETS),
                plain(),
            ),
            family(&self.drift_repairs_total, Shape::Counter, plain()),
            family(&self.drift_fights_total, Shape::Counter, plain()),
            family(
                &self.promotion_duration,
                Shape::Histogram(SLOW_BUCKETS),
                plain(),
            ),
            family(&self.lead_time, Shape::Histogram(SLOW_BUCKETS), plain()),
            family(
                &self.time_to_restore,
                Shape::Histogram(SLOW_BUCKETS),
                plain(),
            ),
            family(&self.promotion_blocked, Shape::Gauge, blocked),
            family(&self.rollout_unobserved, Shape::Gauge, plain()),
        ]
    }
}

/// Times one reconcile; records `greenlight_reconcile_total` and the duration on drop.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    started: Instant,
    result: &'static str,
}

impl ReconcileTimer<'_> {
    /// Marks the reconcile as successful (otherwise it counts as `error`).
    pub fn ok(&mut self) {
        self.result = "ok";
    }

    /// Marks the reconcile as failed for `reason` (an error variant name).
    pub fn failed(&mut self, reason: &'static str) {
        self.result = reason;
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_total
            .with_label_values(&[self.kind, self.result])
            .inc();
        self.metrics
            .reconcile_duration
            .with_label_values(&[self.kind])
            .observe(self.started.elapsed().as_secs_f64());
    }
}
