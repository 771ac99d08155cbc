//! `Pipeline`: the environments a release moves through, and the rules for each move.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{
    common::{DNS_LABEL, DNS_SUBDOMAIN, DURATION, JobStep, SECRET_KEY, limits},
    gitops::GitTarget,
    pipeline_status::PipelineStatus,
    workload::WorkloadKind,
};

/// The environments of one application and the gates between them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "greenlight.dev",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    doc = "A Pipeline declares the environments of one application (dev, staging, prod) and the gates a release must pass to enter each of them.",
    status = "PipelineStatus",
    shortname = "pl",
    category = "greenlight",
    printcolumn = r#"{"name":"Environments","type":"string","jsonPath":".status.summary","description":"Each environment and the version it runs"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.environments.all(e, !has(e.upstream) || e.upstream.all(u, self.environments.exists(x, x.name == u)))").message("every spec.environments[].upstream entry must name an environment of this pipeline").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("self.environments.all(e, !has(e.upstream) || !(e.name in e.upstream))").message("an environment cannot be its own upstream").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// When true, no new promotion starts. Rollbacks and drift repair still run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// How many promotion records each environment keeps in status. Default: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: Option<u32>,
    /// The environments, in order. Each one is promoted from its `upstream` environments,
    /// which default to the environment listed just before it.
    #[schemars(length(min = 1, max = limits::ENVIRONMENTS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub environments: Vec<Environment>,
}

/// The default for `spec.historyLimit`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 20;

/// One environment: where it deploys, how it verifies, and what a release must pass to enter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Name of the environment, unique in the pipeline (a DNS label such as `staging`).
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub name: String,
    /// Environments a release must be Healthy in before it can be promoted here. Omitted:
    /// the previous environment in the list. `[]`: none, releases enter only through `accepts`.
    /// The environments must form a directed acyclic graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::UPSTREAMS), inner(length(min = 1, max = limits::NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub upstream: Option<Vec<String>>,
    /// Globs on a Release's `spec.source.ref`. A matching Release enters this environment
    /// directly, without an upstream. `*` matches within one path segment, `**` across them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS), inner(length(min = 1, max = limits::SHORT)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub accepts: Vec<String>,
    /// The workloads this environment runs.
    pub target: Target,
    /// Jobs run in the target namespace, in order, before any image changes (for example
    /// database migrations). A failed Job stops the deploy before it changes anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub pre_deploy: Vec<JobStep>,
    /// How a release deployed into this environment proves it is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// How a release takes this environment's traffic. Omitted: all at once, as each
    /// workload's own rollout goes. With `steps`, a canary takes a growing share first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// What happens when verification fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Everything a release must pass before it is deployed into this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Gates>,
    /// Holds the environment on one release, declared with the Pipeline (in Git, where the
    /// review of this change is the approval). The environment moves to that release
    /// through the usual deploy, verification and rollback, but not through `gates`, and
    /// takes no other release while the pin stands; promotion resumes when it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
}

/// A pin: the release an environment is held on, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    /// The Release's name (in the Pipeline's namespace).
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub release: String,
    /// Why, for people reading the status (an incident, a change ticket).
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub reason: String,
}

/// Where an environment deploys: the workloads of one namespace whose images Greenlight
/// sets, or with `git`, the Git repository where its images are declared (the workloads
/// are then only watched). `deployments` is the short form of `workloads` entries of kind
/// Deployment; the two lists together name each workload once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("(has(self.git) && !has(self.git.yaml)) || (has(self.deployments) ? size(self.deployments) : 0) + (has(self.workloads) ? size(self.workloads) : 0) >= 1").message("an environment needs at least one target workload: set target.deployments or target.workloads (with target.git, unless its images are in kustomize or helm files)").reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Namespace of the target workloads; Jobs run here too.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub namespace: String,
    /// Deployments whose container images Greenlight sets (short for `workloads`
    /// entries of kind Deployment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub deployments: Vec<TargetDeployment>,
    /// Workloads of any supported kind (Deployment, StatefulSet, DaemonSet, CronJob)
    /// whose container images Greenlight sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["kind".into(), "name".into()]))]
    pub workloads: Vec<Workload>,
    /// The cluster the namespace is in. Unset: the controller's own cluster. Its Jobs
    /// (pre-deploy steps, verification tests) run there too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<TargetCluster>,
    /// GitOps mode: the environment's images are committed to this repository, which
    /// Argo CD or Flux applies, instead of set on the workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitTarget>,
}

/// Another cluster, reached with a kubeconfig kept in a Secret (as Flux's
/// `kubeConfig.secretRef`). The kubeconfig's current context is used; it needs get, list,
/// watch and patch on the target kinds in the target namespace, and create, list, watch
/// and delete on Jobs there if the environment runs Jobs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetCluster {
    /// The Secret, in the Pipeline's namespace, that holds the kubeconfig.
    pub secret_ref: SecretKeyRef,
}

/// A key of a Secret in the Pipeline's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name; it also names the cluster in status and metrics.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// The key under `data`. Default: `value` (Flux's convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(SECRET_KEY))]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The key, with its default.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("value")
    }
}

/// One container of one workload, and the Release artifact whose image it runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// The workload's kind. A StatefulSet or DaemonSet with `updateStrategy: OnDelete`
    /// changes its pods only when they are deleted; a CronJob's new image is rolled out
    /// as soon as the API server accepts it (its next Job runs it).
    pub kind: WorkloadKind,
    /// Name of the workload in the target namespace.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Name of the container whose image is set. Default: the pod template's only
    /// container, or else the container named like the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub container: Option<String>,
    /// Key in the Release's `spec.artifacts` that holds the image. Default: `container`
    /// if set, else the workload's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub artifact: Option<String>,
}

/// One container of one Deployment, and the Release artifact whose image it runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetDeployment {
    /// Name of the Deployment in the target namespace.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Name of the container whose image is set. Default: the Deployment's only container,
    /// or else the container named like the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub container: Option<String>,
    /// Key in the Release's `spec.artifacts` that holds the image. Default: `container`
    /// if set, else the Deployment's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub artifact: Option<String>,
}

impl Target {
    /// Every target workload, whatever list it is written in, with the documented
    /// defaults applied: the one home of that reading for the engine and the controller.
    pub fn workloads(&self) -> impl Iterator<Item = TargetWorkload<'_>> {
        let deployments = self.deployments.iter().map(|d| TargetWorkload {
            kind: WorkloadKind::Deployment,
            name: &d.name,
            container: d.container.as_deref(),
            artifact: d.artifact_name(),
        });
        let workloads = self.workloads.iter().map(|w| TargetWorkload {
            kind: w.kind,
            name: &w.name,
            container: w.container.as_deref(),
            artifact: w
                .artifact
                .as_deref()
                .or(w.container.as_deref())
                .unwrap_or(&w.name),
        });
        deployments.chain(workloads)
    }
}

/// One target workload as [`Target::workloads`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetWorkload<'a> {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its name in the target namespace.
    pub name: &'a str,
    /// The container whose image is set, if named.
    pub container: Option<&'a str>,
    /// The Release artifact it runs.
    pub artifact: &'a str,
}

impl TargetDeployment {
    /// The artifact this deployment runs, with the documented defaults applied.
    pub fn artifact_name(&self) -> &str {
        self.artifact
            .as_deref()
            .or(self.container.as_deref())
            .unwrap_or(&self.name)
    }
}

/// Checks run after deploying into an environment. Failure triggers a rollback.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// Every target Deployment must be rolled out and available within this duration.
    /// Default: `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub progress_deadline: Option<String>,
    /// After the rollout, the checks below must keep passing for this long. Default: `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub window: Option<String>,
    /// HTTP endpoints polled during the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    pub http: Vec<HttpCheck>,
    /// Prometheus queries evaluated on this environment during the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub metrics: Vec<MetricCheck>,
    /// Jobs run against the environment once the rollout completes (for example e2e tests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tests: Vec<JobStep>,
}

/// The default for `verify.progressDeadline`.
pub const DEFAULT_PROGRESS_DEADLINE: &str = "10m";
/// The default for a Job step's `timeout`.
pub const DEFAULT_JOB_TIMEOUT: &str = "10m";

/// An HTTP health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// The `http://` or `https://` URL to GET.
    #[schemars(length(min = 1, max = limits::LONG))]
    pub url: String,
    /// The status code that counts as healthy. Default: 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<u16>,
    /// Time between two probes. Default: `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub interval: Option<String>,
    /// How long one probe may take. Default: `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub timeout: Option<String>,
    /// Consecutive failed probes that fail the check. Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: Option<u32>,
}

/// A Prometheus instant query compared with a threshold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.below) || has(self.above)").message("a metric needs a threshold: set below, above or both").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.below) || !has(self.above) || self.above < self.below").message("above must be less than below, or no value can ever pass").reason(Reason::FieldValueInvalid))]
pub struct MetricCheck {
    /// Name of the check, unique within its list.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub name: String,
    /// The Prometheus server to query.
    pub prometheus: PrometheusSource,
    /// A PromQL expression that returns one scalar or a one-element vector.
    #[schemars(length(min = 1, max = limits::TEXT))]
    pub query: String,
    /// The check passes only while the value is strictly below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// The check passes only while the value is strictly above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
}

/// Where to send PromQL queries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API, such as `http://prometheus.monitoring:9090`.
    #[schemars(length(min = 1, max = limits::LONG))]
    pub address: String,
}

/// A progressive rollout: canary steps, then 100%.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The canary's share of traffic at each step, in order; after the last step the new
    /// release takes all of it. During each step the environment's `verify` checks (and
    /// the step's own `metrics`) must keep passing for the step's `pause`.
    #[schemars(length(min = 1, max = limits::ITEMS))]
    pub steps: Vec<CanaryStep>,
    /// Split traffic by the weights of a Gateway API HTTPRoute instead of by replicas: at
    /// each step the route sends the step's share to `canaryService` (which selects the
    /// canary's pods) and the rest to `stableService`. Without it, the split is by pods.
    #[serde(
        default,
        rename = "gatewayAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRoute>,
}

/// The HTTPRoute whose backend weights carry a canary's share of traffic. It is in the
/// environment's target namespace (and cluster). Greenlight changes only the `weight` of
/// the two `backendRefs` below, in every rule that names both, and nothing else of the
/// route; declare both backends, the canary's at weight 0.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRoute {
    /// The `gateway.networking.k8s.io/v1` HTTPRoute's name.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub http_route: String,
    /// The Service that selects the stable pods (and not the canary's: for example by
    /// `greenlight.dev/track: stable` in the stable pod template, which the canary's copy
    /// of the template turns into `canary`).
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub stable_service: String,
    /// The Service that selects the canary's pods (`greenlight.dev/track: canary`).
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub canary_service: String,
}

/// One canary step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// The canary's share, in percent: of the route's traffic with `gatewayAPI`, else of the
    /// pods behind the Service. Either way the canary Deployment beside each target
    /// Deployment runs `ceil(weight × stable replicas / 100)`. Each step's weight is above
    /// the one before.
    #[schemars(range(min = 1, max = 99))]
    pub weight: u32,
    /// How long the step holds, its checks passing, before the next. Default: `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub pause: Option<String>,
    /// Prometheus queries judged during this step only, besides `verify.metrics` (for
    /// example the canary's error rate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub metrics: Vec<MetricCheck>,
}

/// What to do when a deployed release fails verification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    /// Roll back to the last good release by itself. When false, the release is marked
    /// Failed and the environment holds until a person acts. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<bool>,
    /// Also roll back when a release that already passed verification turns unhealthy.
    /// Default: false (it only stops being a candidate for downstream environments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_verification: Option<bool>,
}

/// The gates a release must pass, all of them, before it is deployed into an environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gates {
    /// Names of `spec.checks` entries on the Release that must be `Passed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MANY_ITEMS), inner(length(min = 1, max = limits::NAME)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub checks: Vec<String>,
    /// How long the release must have been Healthy in every upstream environment,
    /// such as `15m` or `24h`. Does not apply to releases that enter directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub soak: Option<String>,
    /// Approval rules. Each needs `count` distinct approvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub approvals: Vec<ApprovalRule>,
    /// Whether the Release's author or requester may approve it. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_self_approval: bool,
    /// Windows in which a promotion may start. Empty: any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    pub schedule: Vec<ScheduleWindow>,
    /// Periods in which no promotion starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    pub freeze: Vec<Freeze>,
    /// Jobs run against the upstream environment before promotion (smoke, load, soak tests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tests: Vec<JobStep>,
    /// Prometheus queries that must be within their thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub metrics: Vec<MetricCheck>,
    /// HTTP endpoints asked for a decision; a 2xx answer passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub webhooks: Vec<Webhook>,
}

/// A rule that needs `count` distinct people to approve.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.users) || has(self.groups) || self.count <= size(self.users)").message("count is more than the users listed, and no groups are given: no release could ever be approved (lower count, list more users, or add groups)").field_path(".count").reason(Reason::FieldValueInvalid))]
pub struct ApprovalRule {
    /// Name of the rule, shown when it blocks a release.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub name: String,
    /// How many distinct approvers the rule needs.
    #[schemars(range(min = 1, max = 10))]
    pub count: u32,
    /// An approver counts if they are in one of these groups (as the API server saw them
    /// when the Approval was created). Empty together with `users`: anyone may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MANY_ITEMS), inner(length(min = 1, max = limits::SHORT)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub groups: Vec<String>,
    /// An approver counts if their user name is listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MANY_ITEMS), inner(length(min = 1, max = limits::SHORT)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub users: Vec<String>,
}

impl ApprovalRule {
    /// Whether an approval by `user`, who claims `groups`, counts towards this rule: by
    /// name, through a group, or because the rule names nobody (anyone may approve). The
    /// one rule the engine counts by and the plugin warns by.
    pub fn admits(&self, user: &str, groups: &[String]) -> bool {
        (self.groups.is_empty() && self.users.is_empty())
            || self.users.iter().any(|u| u == user)
            || groups.iter().any(|g| self.groups.contains(g))
    }
}

/// A recurring window, in a time zone, in which promotions may start.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleWindow {
    /// When the window opens: a five-field cron expression (minute hour day-of-month
    /// month day-of-week), such as `0 2 * * *`.
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub cron: String,
    /// The IANA time zone the cron expression is read in, such as `Europe/Berlin`.
    /// Default: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub time_zone: Option<String>,
    /// How long the window stays open, such as `1h`.
    #[schemars(length(min = 1, max = limits::SHORT), pattern(DURATION))]
    pub duration: String,
}

/// A period in which no promotion starts: either recurring (`cron`, `duration`) or
/// fixed (`start`, `end`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.cron) != has(self.start)").message("a freeze is either recurring (cron and duration) or fixed (start and end)").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("has(self.cron) == has(self.duration)").message("a recurring freeze needs both cron and duration").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("has(self.start) == has(self.end)").message("a fixed freeze needs both start and end").reason(Reason::FieldValueRequired))]
pub struct Freeze {
    /// Why promotions are frozen, shown to whoever waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT))]
    pub reason: Option<String>,
    /// When a recurring freeze begins: a five-field cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub cron: Option<String>,
    /// The IANA time zone of `cron`. Default: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub time_zone: Option<String>,
    /// How long a recurring freeze lasts, such as `63h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT), pattern(DURATION))]
    pub duration: Option<String>,
    /// Start of a fixed freeze, in RFC 3339 (`2026-12-20T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub start: Option<String>,
    /// End of a fixed freeze, in RFC 3339; must be after `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub end: Option<String>,
}

/// An external system asked for a go/no-go, such as a change-advisory board.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Name of the webhook, unique within its list.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub name: String,
    /// The `http://` or `https://` URL that receives a POST describing the release.
    #[schemars(length(min = 1, max = limits::LONG))]
    pub url: String,
    /// How long the call may take; a timeout counts as a failure. Default: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub timeout: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::ApprovalRule;

    fn rule(groups: &[&str], users: &[&str]) -> ApprovalRule {
        ApprovalRule {
            name: "sre".into(),
            count: 1,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
        }
    }

    #[test]
    fn a_rule_admits_by_name_by_claimed_group_or_when_it_names_nobody() {
        let sre = vec!["sre".to_owned()];
        assert!(rule(&["sre"], &[]).admits("bob", &sre));
        assert!(!rule(&["sre"], &[]).admits("bob", &["dev".to_owned()]));
        assert!(rule(&["sre"], &["alice"]).admits("alice", &[]));
        assert!(!rule(&[], &["alice"]).admits("bob", &sre));
        assert!(rule(&[], &[]).admits("anyone", &[]));
    }
}
