//! The checked form of a Pipeline: parsed durations, schedules and globs, resolved
//! upstreams. Only [`super::validate_pipeline`] builds it, so holding one proves the spec
//! passed every check. The engine works on this, never on raw strings.

use std::time::Duration;

use globset::GlobBuilder;
use serde_json::{Map, Value};

use super::schedule::{Freeze, Window};
use crate::api::{ApprovalRule, WorkloadKind};

/// A Pipeline whose spec passed validation.
#[derive(Clone, Debug)]
pub struct ValidPipeline {
    /// No new promotions start while true.
    pub suspend: bool,
    /// Promotion records kept per environment.
    pub history_limit: u32,
    /// The environments, in spec order.
    pub environments: Vec<ValidEnvironment>,
    /// Indices into `environments`, every environment after all of its upstreams.
    pub topological_order: Vec<usize>,
}

impl ValidPipeline {
    /// The environment with this name.
    pub fn environment(&self, name: &str) -> Option<&ValidEnvironment> {
        self.environments.iter().find(|e| e.name == name)
    }
}

/// One environment, checked.
#[derive(Clone, Debug)]
pub struct ValidEnvironment {
    /// Its name.
    pub name: String,
    /// Indices of its upstream environments, with the "previous environment" default applied.
    pub upstream: Vec<usize>,
    /// The `accepts` globs, compiled.
    pub accepts: Vec<RefGlob>,
    /// Namespace of the targets.
    pub namespace: String,
    /// The cluster of the targets and Jobs: the name of its kubeconfig Secret, in the
    /// Pipeline's namespace. `None`: the controller's own cluster.
    pub cluster: Option<String>,
    /// The containers this environment sets images on.
    pub targets: Vec<ValidTarget>,
    /// Jobs run before the images change.
    pub pre_deploy: Vec<ValidJob>,
    /// How a deploy proves itself.
    pub verify: ValidVerify,
    /// A progressive rollout, if the environment has one: canary steps before 100%.
    pub rollout: Option<ValidRollout>,
    /// What happens on failure.
    pub rollback: ValidRollback,
    /// What a release must pass to be deployed here.
    pub gates: ValidGates,
    /// The release the environment is held on, and why.
    pub pin: Option<crate::api::Pin>,
    /// GitOps mode: the repository its images are committed to. `targets` are then only
    /// watched (to know a commit is deployed when no Argo CD or Flux object says so).
    pub git: Option<ValidGit>,
}

/// `target.git`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidGit {
    /// The repository's URL.
    pub repository: String,
    /// The branch committed to.
    pub branch: String,
    /// The environment's directory in the repository (`""`: its root).
    pub dir: String,
    /// The Secret with the credentials, in the Pipeline's namespace.
    pub secret: Option<String>,
    /// The commits' author: name and email.
    pub author: (String, String),
    /// Where the images are written.
    pub layout: crate::gitops::layout::Layout,
    /// What says a commit is deployed.
    pub sync: SyncSource,
}

/// What says that a commit reached the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncSource {
    /// An Argo CD Application: namespace and name.
    ArgoCd { namespace: String, name: String },
    /// A Flux Kustomization: namespace and name.
    Flux { namespace: String, name: String },
    /// The target workloads: rolled out with the committed images.
    Workloads,
}

impl ValidEnvironment {
    /// Whether a Release from `git_ref` enters this environment directly.
    pub fn accepts_ref(&self, git_ref: &str) -> bool {
        self.accepts.iter().any(|glob| glob.is_match(git_ref))
    }
}

/// An `accepts` glob and its compiled matcher.
#[derive(Clone, Debug)]
pub struct RefGlob {
    /// As written.
    pub pattern: String,
    /// The glob's regex (`*` stops at `/`), compiled by `regex-lite`: a checked Pipeline
    /// is cached for as long as it exists, and a `globset` matcher (a full `regex`) costs
    /// 8 to 14 KB per pattern, `regex-lite` 1.5 to 3 KB.
    matcher: regex_lite::Regex,
}

impl RefGlob {
    /// Parses `pattern` as a glob whose `*` and `?` never match `/`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|err| format!("{pattern:?} is not a valid glob: {}", err.kind()))?;
        // globset writes its regex for bytes (`(?-u)`); refs are text, and regex-lite
        // matches text only.
        let regex = glob.regex();
        let matcher = regex_lite::Regex::new(regex.strip_prefix("(?-u)").unwrap_or(regex))
            .map_err(|err| format!("{pattern:?} cannot be matched: {err}"))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            matcher,
        })
    }

    /// Whether `git_ref` matches.
    pub fn is_match(&self, git_ref: &str) -> bool {
        self.matcher.is_match(git_ref)
    }
}

/// One container of one workload, and the artifact it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidTarget {
    /// The workload's kind.
    pub kind: WorkloadKind,
    /// The workload's name.
    pub name: String,
    /// Container name; `None` means "the only container, or the one named like the
    /// workload", resolved against the live object.
    pub container: Option<String>,
    /// The key in `Release.spec.artifacts`.
    pub artifact: String,
}

/// A Job step, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidJob {
    /// Step name.
    pub name: String,
    /// The JobSpec, as written.
    pub template: Map<String, Value>,
    /// How long it may run.
    pub timeout: Duration,
}

/// Verification settings with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidVerify {
    /// Rollout deadline.
    pub progress_deadline: Duration,
    /// Observation window after the rollout.
    pub window: Duration,
    /// HTTP health checks.
    pub http: Vec<ValidHttpCheck>,
    /// Metric checks.
    pub metrics: Vec<ValidMetric>,
    /// Test Jobs.
    pub tests: Vec<ValidJob>,
}

/// An HTTP check with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidHttpCheck {
    /// The URL to GET.
    pub url: url::Url,
    /// The healthy status code.
    pub expect_status: u16,
    /// Time between probes.
    pub interval: Duration,
    /// Time one probe may take.
    pub timeout: Duration,
    /// Consecutive failures that fail the check.
    pub failure_threshold: u32,
}

/// A metric check.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidMetric {
    /// Check name.
    pub name: String,
    /// Prometheus base URL.
    pub address: url::Url,
    /// PromQL.
    pub query: String,
    /// Passes only while the value is below this.
    pub below: Option<f64>,
    /// Passes only while the value is above this.
    pub above: Option<f64>,
}

/// A progressive rollout, checked: at least one step, weights rising within 1–99.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidRollout {
    /// The canary steps, in order.
    pub steps: Vec<ValidCanaryStep>,
    /// The HTTPRoute that splits traffic by weight; `None`: by pods.
    pub gateway_api: Option<ValidGatewayRoute>,
}

/// The HTTPRoute of `rollout.gatewayAPI`, checked: two different Services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidGatewayRoute {
    /// The HTTPRoute, in the target namespace.
    pub http_route: String,
    /// The backend that serves the stable release.
    pub stable_service: String,
    /// The backend that serves the canary.
    pub canary_service: String,
}

/// One canary step with its defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCanaryStep {
    /// The canary's share, in percent (1–99).
    pub weight: u32,
    /// How long the step holds with its checks passing.
    pub pause: Duration,
    /// Metric checks of this step only.
    pub metrics: Vec<ValidMetric>,
}

/// Rollback settings with defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidRollback {
    /// Roll back by itself on a failed verification.
    pub automatic: bool,
    /// Also roll back when a verified release turns unhealthy.
    pub after_verification: bool,
}

/// Gates, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidGates {
    /// Required Release checks.
    pub checks: Vec<String>,
    /// Minimum time Healthy in every upstream.
    pub soak: Option<Duration>,
    /// Approval rules.
    pub approvals: Vec<ApprovalRule>,
    /// Whether the author or requester may approve.
    pub allow_self_approval: bool,
    /// Windows in which promotions may start; empty means any time.
    pub schedule: Vec<Window>,
    /// Periods in which promotions never start.
    pub freeze: Vec<Freeze>,
    /// Test Jobs against the upstream environment.
    pub tests: Vec<ValidJob>,
    /// Metric thresholds.
    pub metrics: Vec<ValidMetric>,
    /// Go/no-go webhooks.
    pub webhooks: Vec<ValidWebhook>,
}

/// A webhook gate.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidWebhook {
    /// Webhook name.
    pub name: String,
    /// Where to POST.
    pub url: url::Url,
    /// How long the call may take.
    pub timeout: Duration,
}
