//! Semantic checks of Release and Approval specs on their own.

use super::{
    names::{dns_label, dns_subdomain, image_reference},
    problems::{FieldPath, Problems},
};
use crate::api::{ApprovalSpec, ReleaseSpec};

/// Checks a Release spec on its own (see [`super::validate_release_references`] for the
/// checks against its Pipeline).
pub fn validate_release(spec: &ReleaseSpec) -> Problems {
    let mut problems = Problems::new();
    let root = FieldPath::new("spec");
    problems.check(&root.field("pipeline"), dns_subdomain(&spec.pipeline));
    if spec.version.trim().is_empty() {
        problems.error(&root.field("version"), "the version is empty");
    }
    let artifacts = root.field("artifacts");
    if spec.artifacts.is_empty() {
        problems.error(&artifacts, "a release needs at least one artifact, such as api: registry.example.com/shop/api@sha256:…");
    }
    for (name, image) in &spec.artifacts {
        let entry = artifacts.key(name);
        problems.check(
            &entry,
            dns_label(name).map_err(|e| format!("artifact name: {e}")),
        );
        problems.check(&entry, image_reference(image));
    }
    if spec.source.git_ref.trim().is_empty() {
        problems.error(
            &root.field("source").field("ref"),
            "the ref is empty: expected a branch or tag such as release/v1.4.2",
        );
    }
    if spec
        .requested_by
        .as_deref()
        .is_some_and(|r| r.trim().is_empty())
    {
        problems.error(&root.field("requestedBy"), "empty user name");
    }
    let checks = root.field("checks");
    for (i, check) in spec.checks.iter().enumerate() {
        if let Some(first) = spec.checks[..i].iter().position(|c| c.name == check.name) {
            problems.error(
                &checks.index(i).field("name"),
                format!(
                    "duplicate check {:?}: already at {}",
                    check.name,
                    checks.index(first)
                ),
            );
        }
    }
    problems
}

/// Checks an Approval spec on its own.
pub fn validate_approval(spec: &ApprovalSpec) -> Problems {
    let mut problems = Problems::new();
    let root = FieldPath::new("spec");
    problems.check(&root.field("release"), dns_subdomain(&spec.release));
    problems.check(&root.field("environment"), dns_label(&spec.environment));
    if spec.approver.trim().is_empty() {
        problems.error(
            &root.field("approver"),
            "empty user name: the approver is the user who creates the Approval",
        );
    }
    let groups = root.field("groups");
    for (i, group) in spec.groups.iter().enumerate() {
        if spec.groups[..i].contains(group) {
            problems.error(&groups.index(i), format!("group {group:?} is listed twice"));
        }
    }
    problems
}
