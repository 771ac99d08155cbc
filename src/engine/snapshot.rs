//! What the engine is given: the objects, what was observed, and the time.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;

use super::workload::WorkloadView;

use crate::api::{
    ApprovalSpec, ApprovalStatus, PipelineSpec, PipelineStatus, ReleaseSpec, ReleaseStatus,
};

/// Everything one decision depends on. The engine reads nothing else: no clock, no client.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The instant of the decision.
    pub now: Timestamp,
    /// The Pipeline, with its current status (the engine's memory).
    pub pipeline: PipelineView,
    /// The Releases that name this pipeline.
    pub releases: Vec<ReleaseView>,
    /// The Approvals of those Releases.
    pub approvals: Vec<ApprovalView>,
    /// The target workloads as observed.
    pub workloads: Vec<WorkloadView>,
    /// The Jobs Greenlight created for this pipeline.
    pub jobs: Vec<JobView>,
    /// The HTTPRoutes of environments that split canary traffic by weight
    /// (`rollout.gatewayAPI`), as observed.
    pub routes: Vec<RouteView>,
    /// The latest result of each probe.
    pub observations: Vec<Observation>,
    /// The namespaces of other clusters that cannot be used now, and why.
    pub unreachable: Vec<Unreachable>,
    /// The Git repositories of environments in GitOps mode (`target.git`), as read.
    pub git: Vec<GitView>,
}

/// The repository of one environment in GitOps mode, as read.
#[derive(Clone, Debug, PartialEq)]
pub struct GitView {
    /// The environment.
    pub environment: String,
    /// What its branch declares, or why it cannot be read now (unreachable, refused
    /// credentials, a file that does not parse): the environment then waits.
    pub state: Result<GitRead, String>,
}

/// An environment's branch as read.
#[derive(Clone, Debug, PartialEq)]
pub struct GitRead {
    /// The branch's head commit.
    pub head: String,
    /// The images the files declare, by artifact: the full reference of a Release whose
    /// image the files hold (a layout may store only a tag), else what they hold.
    pub images: BTreeMap<String, String>,
    /// A person's commit that changed the images after Greenlight's last commit to this
    /// environment; Greenlight never overwrites it.
    pub changed_by: Option<GitChange>,
    /// Whether Argo CD or Flux applied the images: `None` when the target workloads say.
    pub sync: Option<SyncState>,
}

/// A commit that changed an environment's images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitChange {
    /// Its id.
    pub commit: String,
    /// `Name <email>`.
    pub author: String,
    /// Its first line.
    pub summary: String,
}

/// Where Argo CD or Flux stands with the images the branch declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// It has not applied them yet: what it is at, in words.
    Waiting(String),
    /// Applied, not healthy yet: what it says, in words.
    Progressing(String),
    /// Applied and healthy.
    Healthy,
    /// Applied and degraded, or the apply failed: its message.
    Failed(String),
}

/// A target namespace in another cluster that cannot be used now: its workloads and Jobs
/// are unknown, so its environment waits (nothing is decided about it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// The cluster (its kubeconfig Secret's name).
    pub cluster: String,
    /// The target namespace there.
    pub namespace: String,
    /// Why, in words (never credentials).
    pub reason: String,
}

/// A Pipeline object.
#[derive(Clone, Debug)]
pub struct PipelineView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// The spec as stored.
    pub spec: PipelineSpec,
    /// The status as last written.
    pub status: PipelineStatus,
}

/// A Release object.
#[derive(Clone, Debug)]
pub struct ReleaseView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp`: "newest" means the latest of these.
    pub created: Timestamp,
    /// The spec.
    pub spec: ReleaseSpec,
    /// The status as last written (conditions keep their transition times).
    pub status: Option<ReleaseStatus>,
}

/// An Approval object.
#[derive(Clone, Debug)]
pub struct ApprovalView {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// The spec.
    pub spec: ApprovalSpec,
    /// The status as last written.
    pub status: Option<ApprovalStatus>,
}

/// One container and its image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerImage {
    /// Container name.
    pub container: String,
    /// Image reference.
    pub image: String,
}

/// Names an HTTPRoute.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteRef {
    /// The cluster (its kubeconfig Secret's name); `None`: the controller's own.
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for RouteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTPRoute {}/{}", self.namespace, self.name)?;
        match &self.cluster {
            Some(cluster) => write!(f, " in cluster {cluster}"),
            None => Ok(()),
        }
    }
}

/// An HTTPRoute as observed: the Service backends of each of its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteView {
    /// Which route.
    pub route: RouteRef,
    /// Each rule's backends that are Services of the route's namespace, in order.
    pub rules: Vec<Vec<Backend>>,
}

/// One backend of a route rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The Service's name.
    pub service: String,
    /// Its weight (Gateway API's default is 1).
    pub weight: u32,
}

impl RouteView {
    /// The rules that name both Services, as their (stable, canary) weights.
    pub fn split(&self, stable: &str, canary: &str) -> Vec<(u32, u32)> {
        let weight = |rule: &[Backend], service: &str| {
            rule.iter().find(|b| b.service == service).map(|b| b.weight)
        };
        self.rules
            .iter()
            .filter_map(|rule| weight(rule, stable).zip(weight(rule, canary)))
            .collect()
    }
}

/// A Job as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    /// The cluster (its kubeconfig Secret's name); `None`: the controller's own.
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// Name (deterministic, see [`super::jobs`]).
    pub name: String,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// Whether it finished, and how.
    pub outcome: JobOutcome,
    /// The termination message or failure reason, if any.
    pub message: Option<String>,
}

/// How a Job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Still running (or not yet scheduled).
    Running,
    /// Completed successfully.
    Succeeded,
    /// Failed (backoff limit or deadline exceeded).
    Failed,
}

/// Identifies one probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId {
    /// The environment whose check it is.
    pub environment: String,
    /// Verification (after deploy) or gate (before deploy).
    pub purpose: ProbePurpose,
    /// HTTP, metric or webhook.
    pub kind: ProbeKind,
    /// The check's name (`http[0]` style for unnamed HTTP checks).
    pub name: String,
    /// For webhooks: the release asked about.
    pub release: Option<String>,
}

/// Why a probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbePurpose {
    /// `verify` and keep-watching checks of a deployed release.
    Verify,
    /// `gates` checks of a candidate.
    Gate,
}

/// What a probe does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// An HTTP GET and an expected status.
    Http,
    /// A Prometheus query and a threshold.
    Metric,
    /// A POST to an external system; 2xx passes.
    Webhook,
}

/// The latest result of one probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Which probe.
    pub probe: ProbeId,
    /// When it ran.
    pub at: Timestamp,
    /// Whether it passed.
    pub ok: bool,
    /// Failures in a row up to and including this one (0 when it passed).
    pub consecutive_failures: u32,
    /// The measured value, for metrics.
    pub value: Option<f64>,
    /// What was seen, in words.
    pub message: String,
}

/// How old a gate probe result may be and still count.
pub const GATE_OBSERVATION_MAX_AGE: Duration = Duration::from_secs(5 * 60);
