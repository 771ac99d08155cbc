//! What the engine returns: statuses to write, actions to take, Events to emit, probes to
//! run, and when to ask again. Writing the statuses first and then taking the actions is
//! always safe: every action is derived from the state, so repeating it changes nothing.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use serde_json::Value;

use super::{
    snapshot::{ContainerImage, ProbeId, RouteRef},
    workload::WorkloadRef,
};
use crate::api::{ApprovalStatus, PipelineStatus, ReleaseStatus};

/// The outcome of one decision.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// The new Pipeline status. Write it before taking any action.
    pub pipeline_status: PipelineStatus,
    /// The new status of each Release of the pipeline, by name.
    pub release_statuses: BTreeMap<String, ReleaseStatus>,
    /// The new status of each Approval the engine read, by name.
    pub approval_statuses: BTreeMap<String, ApprovalStatus>,
    /// Changes to make in the cluster.
    pub actions: Vec<Action>,
    /// Probes that must run now, each at its interval.
    pub probes: Vec<ProbeRequest>,
    /// Transitions, for Kubernetes Events and metrics.
    pub events: Vec<Event>,
    /// The next instant at which the decision could change by the passing of time alone.
    pub requeue_at: Option<Timestamp>,
}

/// The HTTPRoute that splits an environment's traffic between its stable and canary
/// Services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryRoute {
    /// The HTTPRoute.
    pub route: RouteRef,
    /// The stable release's Service.
    pub stable_service: String,
    /// The canary's Service.
    pub canary_service: String,
}

/// A change to make in the cluster. Each is idempotent.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Set these containers' images (server-side apply; nothing else changes).
    SetImages {
        /// The workload.
        workload: WorkloadRef,
        /// The images to set.
        images: Vec<ContainerImage>,
    },
    /// Create or update the canary Deployment beside the target Deployment `stable`
    /// (named `<stable>-canary`): the stable pod template with these images, its pods
    /// labelled `greenlight.dev/track: canary`, and `weight` percent of the stable
    /// replicas, rounded up.
    SetCanary {
        /// The target Deployment.
        stable: WorkloadRef,
        /// The images the canary runs.
        images: Vec<ContainerImage>,
        /// Its share, in percent.
        weight: u32,
    },
    /// Delete the canary Deployment beside the target Deployment `stable`, once `route`
    /// (where the environment splits traffic by weight) sends it nothing, as the API server
    /// has it, whatever the caches show: a route still giving the canary a share (our own
    /// change not yet seen, say) is sent back to the stable Service first.
    DeleteCanary {
        /// The target Deployment.
        stable: WorkloadRef,
        /// The environment's traffic split, with `rollout.gatewayAPI`.
        route: Option<CanaryRoute>,
    },
    /// Give `canary_service` `weight` and `stable_service` the rest of 100 in every rule
    /// of `route` that names both; nothing else of the route changes.
    SetRouteWeights {
        /// The HTTPRoute.
        route: RouteRef,
        /// The stable release's Service.
        stable_service: String,
        /// The canary's Service.
        canary_service: String,
        /// The canary's share, in percent (0: all traffic to the stable release).
        weight: u32,
    },
    /// Commit images to an environment's repository (GitOps mode): one commit that
    /// changes only their fields, unless the branch declares them already.
    Commit(CommitRequest),
    /// Create a Job unless it exists.
    CreateJob(JobRequest),
    /// Delete a Job that ran past its timeout.
    DeleteJob {
        /// The cluster (its kubeconfig Secret's name); `None`: the controller's own.
        cluster: Option<String>,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// A commit to make (see [`Action::Commit`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CommitRequest {
    /// The environment whose repository it goes to.
    pub environment: String,
    /// The images, by artifact.
    pub images: BTreeMap<String, String>,
    /// Why: its message and trailers.
    pub note: ChangeNote,
}

/// Why an environment's images change, as a commit says it (direct mode needs none).
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeNote {
    /// A promotion, a rollback or a restore.
    pub purpose: CommitPurpose,
    /// The release whose images these are; `None`: the baseline images.
    pub release: Option<String>,
    /// Its version, or what the images are ("the baseline images").
    pub version: String,
    /// What a person reading the history should know: the gates passed, the approvers,
    /// the failure that caused a rollback.
    pub details: Vec<String>,
}

/// Why Greenlight commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitPurpose {
    /// A promotion.
    Deploy,
    /// Back to the last good images.
    Rollback,
    /// The branch no longer declares what the environment runs.
    Restore,
}

impl CommitPurpose {
    /// As the `Greenlight-Purpose` trailer writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
            Self::Restore => "restore",
        }
    }
}

/// A Job to create.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRequest {
    /// The cluster (its kubeconfig Secret's name); `None`: the controller's own.
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Deterministic name: the same request always has the same name.
    pub name: String,
    /// Labels that tie it to the pipeline, environment, release and step.
    pub labels: BTreeMap<String, String>,
    /// The `batch/v1` JobSpec, with Greenlight's additions.
    pub spec: Value,
    /// How long it may run.
    pub timeout: Duration,
}

/// A probe to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeRequest {
    /// Which probe; its results come back as observations with this id.
    pub id: ProbeId,
    /// What to do.
    pub target: ProbeTarget,
    /// How often.
    pub interval: Duration,
}

/// What a probe does.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeTarget {
    /// GET `url`, expect `expect_status`.
    Http {
        /// URL.
        url: String,
        /// Healthy status code.
        expect_status: u16,
        /// Time limit of one probe.
        timeout: Duration,
    },
    /// Query Prometheus and compare with the thresholds.
    Metric {
        /// Prometheus base URL.
        address: String,
        /// PromQL.
        query: String,
        /// Passes only while the value is below.
        below: Option<f64>,
        /// Passes only while the value is above.
        above: Option<f64>,
    },
    /// POST `payload` to `url`; 2xx passes.
    Webhook {
        /// URL.
        url: String,
        /// Time limit.
        timeout: Duration,
        /// The JSON body describing the release and environment.
        payload: Value,
    },
}

/// Kubernetes Event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Things going as planned.
    Normal,
    /// Something failed or needs a person.
    Warning,
}

/// The object an Event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Regarding {
    /// The Pipeline.
    Pipeline,
    /// A Release, by name.
    Release(String),
}

/// A transition worth telling people about.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Which object.
    pub regarding: Regarding,
    /// Normal or Warning.
    pub kind: EventType,
    /// CamelCase reason, such as `PromotionStarted`.
    pub reason: &'static str,
    /// A sentence.
    pub message: String,
    /// The environment concerned, if any.
    pub environment: Option<String>,
    /// What the metrics should count, if anything.
    pub metric: Option<MetricEvent>,
}

/// Every `trigger` a [`MetricEvent::Rollback`] can carry.
pub const ROLLBACK_TRIGGERS: [&str; 3] = ["verification", "unhealthy", "manual"];

/// What an Event means for the Prometheus metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricEvent {
    /// A promotion ended; `result` is a `greenlight_promotions_total` label value.
    PromotionFinished {
        /// `succeeded`, `failed`, `rolled_back` or `superseded`.
        result: &'static str,
        /// Deploy start to verified (successes only).
        duration: Option<Duration>,
        /// Release created to healthy here (successes only).
        lead_time: Option<Duration>,
    },
    /// A rollback started; `trigger` is `verification`, `unhealthy` or `manual`.
    Rollback {
        /// What triggered it.
        trigger: &'static str,
    },
    /// A canary step ended.
    CanaryStep {
        /// It held its pause with every check passing (else it aborted the deploy).
        passed: bool,
        /// Its start to its end.
        duration: Duration,
    },
    /// An environment recovered from a failure.
    Restored {
        /// Failure to healthy again.
        after: Duration,
    },
    /// Drifted images were restored.
    DriftRepaired,
    /// Drift repair stopped: another field manager keeps setting the images back.
    DriftFight,
    /// A promotion started: these gates passed.
    GatesPassed {
        /// The gates, by name.
        gates: Vec<&'static str>,
    },
}
