//! `Approval`: one person's decision on one release for one environment.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Conditions, DNS_LABEL, DNS_SUBDOMAIN, limits};

/// A person's decision, bound to one release and one environment. Immutable.
///
/// The chart's admission policy checks `approver` and `groups` against the identity the
/// API server authenticated, so they cannot be forged by the client.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "greenlight.dev",
    version = "v1alpha1",
    kind = "Approval",
    namespaced,
    doc = "An Approval records one person's decision to approve or reject one Release for one environment.",
    status = "ApprovalStatus",
    shortname = "appr",
    category = "greenlight",
    printcolumn = r#"{"name":"Release","type":"string","jsonPath":".spec.release"}"#,
    printcolumn = r#"{"name":"Environment","type":"string","jsonPath":".spec.environment"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".spec.decision"}"#,
    printcolumn = r#"{"name":"Approver","type":"string","jsonPath":".spec.approver"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("an Approval cannot be changed; delete it and create a new one").reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// Name of the Release, in the same namespace.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub release: String,
    /// The environment of the release's pipeline this decision is for.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub environment: String,
    /// `Approve`, or `Reject` to block the release for that environment; or an override:
    /// `PromoteNow`, `Retry`, `Rollback`.
    pub decision: Decision,
    /// The user name of the person deciding; must be the user who creates the Approval.
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub approver: String,
    /// Groups the approver acts for; each must be one of the creating user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MANY_ITEMS), inner(length(min = 1, max = limits::SHORT)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub groups: Vec<String>,
    /// Why, for the audit trail (a change ticket, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::TEXT))]
    pub comment: Option<String>,
}

/// A person's decision. `Approve` and `Reject` feed the approval gate; the others are
/// overrides, recorded in the Pipeline's status with who asked.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Decision {
    /// Counts towards the environment's approval rules.
    Approve,
    /// Blocks the release for the environment.
    Reject,
    /// Promote as soon as every other gate passes, ignoring the schedule gate only.
    PromoteNow,
    /// Clear the release's failure in the environment so it may be deployed again, and
    /// re-run its failed gate tests.
    Retry,
    /// Roll the environment back to this release, which must have run there before.
    Rollback,
    /// End the canary step this release is in now, without the rest of its pause (once
    /// its canary is ready and no check has failed): the next step, or after the last the
    /// whole environment. Counts for the step under way when it is created.
    PromoteStep,
    /// Abort this release's canary steps: its traffic goes back to the stable release,
    /// the canary is deleted and the release is Failed here, as when a step fails.
    AbortCanary,
}

/// Whether and how the approval counted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    /// `Counted`: whether this approval counts towards a rule, and if not, why (for
    /// example the approver is the release's author).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Conditions,
}
