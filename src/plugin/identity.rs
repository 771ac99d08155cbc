//! Who the caller is, as the API server sees them: a `SelfSubjectReview` returns the
//! user name and groups the chart's admission policy will check the Approval against.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{Api, api::PostParams};

use super::{cluster::Cluster, error::PluginError};
use crate::api::ApprovalRule;

/// The authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name, which becomes `spec.approver`.
    pub username: String,
    /// Every group the API server put the user in.
    pub groups: Vec<String>,
}

impl Identity {
    /// The user's groups that `rules` name, sorted and without repeats: what
    /// `spec.groups` should carry so the approval counts, and no more than the user has,
    /// so the admission policy accepts it.
    pub fn groups_named_by(&self, rules: &[ApprovalRule]) -> Vec<String> {
        let mut groups: Vec<String> = self
            .groups
            .iter()
            .filter(|group| rules.iter().any(|rule| rule.groups.contains(group)))
            .cloned()
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether an approval by this user can count towards at least one of `rules`:
    /// through a group, by name, or because a rule is open to everyone.
    pub fn can_count_for(&self, rules: &[ApprovalRule]) -> bool {
        rules
            .iter()
            .any(|rule| rule.admits(&self.username, &self.groups))
    }
}

/// Asks the API server who the client's credentials belong to.
pub async fn who_am_i(cluster: &Cluster) -> Result<Identity, PluginError> {
    let api: Api<SelfSubjectReview> = Api::all(cluster.client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|source| {
            cluster.failed(
                "could not ask the API server who you are (create \
                 selfsubjectreviews.authentication.k8s.io)"
                    .into(),
                source,
            )
        })?;
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    match user.username.filter(|name| !name.is_empty()) {
        Some(username) => Ok(Identity {
            username,
            groups: user.groups.unwrap_or_default(),
        }),
        None => Err(PluginError::Invalid(
            "the API server's SelfSubjectReview named no user: an Approval needs an authenticated user".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], users: &[&str]) -> ApprovalRule {
        ApprovalRule {
            name: "rule".into(),
            count: 1,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    fn alice(groups: &[&str]) -> Identity {
        Identity {
            username: "alice".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn only_the_groups_the_rules_name_are_claimed() {
        let who = alice(&["system:authenticated", "sre", "release-managers", "devs"]);
        let rules = [rule(&["release-managers", "cab"], &[]), rule(&["sre"], &[])];
        assert_eq!(who.groups_named_by(&rules), ["release-managers", "sre"]);
    }

    #[test]
    fn no_rules_claim_no_groups() {
        assert!(alice(&["sre"]).groups_named_by(&[]).is_empty());
    }

    #[test]
    fn a_user_counts_by_group_by_name_or_when_a_rule_is_open() {
        assert!(alice(&["sre"]).can_count_for(&[rule(&["sre"], &[])]));
        assert!(alice(&[]).can_count_for(&[rule(&["cab"], &["alice"])]));
        assert!(alice(&[]).can_count_for(&[rule(&[], &[])]));
        assert!(!alice(&["devs"]).can_count_for(&[rule(&["cab"], &["bob"])]));
    }
}
