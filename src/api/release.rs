//! `Release`: one build, with the same artifacts, travelling through a pipeline.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::{Conditions, DNS_SUBDOMAIN, limits};

/// One build of an application, created by CI, promoted by Greenlight.
///
/// Everything but `checks` is immutable, so an approval can never be carried over to
/// different artifacts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "greenlight.dev",
    version = "v1alpha1",
    kind = "Release",
    namespaced,
    doc = "A Release is one build travelling through a Pipeline: the same artifacts in every environment, plus the CI check results that gates read.",
    status = "ReleaseStatus",
    shortname = "rel",
    category = "greenlight",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".spec.pipeline"}"#,
    printcolumn = r#"{"name":"Furthest","type":"string","jsonPath":".status.furthestEnvironment","description":"The furthest environment where this release is Healthy"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.pipeline == oldSelf.pipeline").message("spec.pipeline is immutable").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.version == oldSelf.version").message("spec.version is immutable").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.artifacts == oldSelf.artifacts").message("spec.artifacts is immutable: create a new Release for new images").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.source == oldSelf.source").message("spec.source is immutable").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.requestedBy) == has(oldSelf.requestedBy) && (!has(self.requestedBy) || self.requestedBy == oldSelf.requestedBy)").message("spec.requestedBy is immutable").reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// Name of the Pipeline, in the same namespace, that this release travels through.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub pipeline: String,
    /// The version people talk about, such as `1.4.2`.
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub version: String,
    /// The image of each artifact, by the artifact names the Pipeline's targets use.
    /// Pin by digest (`name@sha256:…`) so every environment runs the same bytes.
    #[schemars(schema_with = "artifacts_schema")]
    pub artifacts: BTreeMap<String, String>,
    /// Where the build came from. `ref` decides which environments it enters directly.
    pub source: Source,
    /// Who created this Release. The chart's admission policy rejects a value that differs
    /// from the creating user, and that person never counts as an approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub requested_by: Option<String>,
    /// Results of CI checks, keyed by name. CI patches entries as they finish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MANY_ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub checks: Vec<Check>,
}

/// Why a person's approval of a release is their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfApproval {
    /// They wrote it (`source.author`).
    Author,
    /// They asked for it (`requestedBy`).
    Requester,
}

impl ReleaseSpec {
    /// Whether `user` approving this release approves their own work: the one rule the
    /// engine ignores such approvals by (unless `allowSelfApproval`) and the plugin warns by.
    pub fn self_approval(&self, user: &str) -> Option<SelfApproval> {
        if self.source.author.as_deref() == Some(user) {
            Some(SelfApproval::Author)
        } else if self.requested_by.as_deref() == Some(user) {
            Some(SelfApproval::Requester)
        } else {
            None
        }
    }
}

fn artifacts_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": limits::MANY_ITEMS,
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": limits::LONG},
    })
}

/// The source-control origin of a build.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The branch or tag, such as `release/v1.4.2`, matched against `accepts`.
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub git_ref: String,
    /// The commit the build was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub commit: Option<String>,
    /// The commit's author. Never counts as an approver unless self-approval is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub author: Option<String>,
}

/// One CI check result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Name of the check, as gates name it (`test`, `security`, `build`).
    #[schemars(length(min = 1, max = limits::NAME))]
    pub name: String,
    /// Its current state.
    pub state: CheckState,
    /// Where to read the details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::LONG))]
    pub url: Option<String>,
}

/// The state of one CI check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CheckState {
    /// Not started yet.
    Pending,
    /// Running.
    Running,
    /// Finished successfully: the only state that opens a `checks` gate.
    Passed,
    /// Finished unsuccessfully.
    Failed,
}

/// Where a release stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` and `Ready`, per the Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Conditions,
    /// A one-word summary for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReleasePhase>,
    /// The furthest environment, in pipeline order, where this release is Healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub furthest_environment: Option<String>,
    /// Where the release stands in each environment it has reached or waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub environments: Vec<ReleaseEnvironmentStatus>,
}

/// A one-word summary of a release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ReleasePhase {
    /// Matches no environment's `accepts` and is upstream of nothing yet.
    Pending,
    /// Waiting for gates, deploying or verifying somewhere.
    Progressing,
    /// Healthy in every environment it can reach.
    Complete,
    /// Failed verification somewhere and is not promoted further.
    Failed,
    /// A newer release took its place everywhere it was waiting.
    Superseded,
}

/// A release's state in one environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEnvironmentStatus {
    /// Name of the environment.
    pub name: String,
    /// The release's state there.
    pub state: ReleaseEnvironmentState,
    /// When it entered this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For a waiting release: the gates that block it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<BlockingGate>,
}

/// A release's state in one environment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ReleaseEnvironmentState {
    /// A candidate waiting for its gates.
    Waiting,
    /// Pre-deploy Jobs or the rollout are running.
    Deploying,
    /// The rollout finished; verification checks are running.
    Verifying,
    /// Verified, and still healthy.
    Healthy,
    /// Verified earlier but unhealthy now: not a candidate downstream until it recovers.
    Unhealthy,
    /// Failed verification; never promoted onward unless a person retries it.
    Failed,
    /// A newer release was deployed instead.
    Superseded,
    /// Rejected by an Approval for this environment.
    Rejected,
}

/// One gate that keeps a release waiting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockingGate {
    /// The gate: `checks`, `soak`, `approvals`, `schedule`, `freeze`, `tests`, `metrics`
    /// or `webhooks`.
    pub gate: String,
    /// Why it blocks, in words.
    pub reason: String,
    /// The earliest time it can open by itself, when that is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::{ReleaseSpec, SelfApproval};

    #[test]
    fn approving_what_you_wrote_or_asked_for_is_self_approval() {
        let mut spec: ReleaseSpec = serde_json::from_value(serde_json::json!({
            "pipeline": "shop", "version": "1.4.2", "artifacts": {"api": "api:1.4.2"},
            "source": {"ref": "refs/heads/main", "author": "alice"}, "requestedBy": "ci-bot"
        }))
        .unwrap();
        assert_eq!(spec.self_approval("alice"), Some(SelfApproval::Author));
        assert_eq!(spec.self_approval("ci-bot"), Some(SelfApproval::Requester));
        assert_eq!(spec.self_approval("bob"), None);
        // Author and requester alike: the authorship is what people are told about.
        spec.requested_by = Some("alice".into());
        assert_eq!(spec.self_approval("alice"), Some(SelfApproval::Author));
    }
}
