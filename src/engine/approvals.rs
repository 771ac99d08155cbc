//! The approval gate: distinct approvers per rule, never the author or requester unless
//! self-approval is allowed, and any rejection blocks.

use std::collections::BTreeSet;

use super::snapshot::{ApprovalView, ReleaseView};
use crate::{
    api::{Decision as Verdict, SelfApproval},
    validation::ValidGates,
};

/// How the approvals for one release and one environment count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    /// Per rule: its name, how many it needs, and who counted.
    pub rules: Vec<RuleTally>,
    /// The first rejection, if any: who and why.
    pub rejected_by: Option<(String, Option<String>)>,
    /// Approvals that did not count, with the reason (by Approval name).
    pub ignored: Vec<(String, String)>,
    /// Approvals that counted towards at least one rule (by Approval name).
    pub counted: Vec<String>,
}

/// One rule's count.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleTally {
    /// Rule name.
    pub name: String,
    /// Distinct approvers needed.
    pub needed: u32,
    /// Distinct approvers who counted, sorted.
    pub approvers: Vec<String>,
}

impl RuleTally {
    /// Whether the rule is satisfied.
    pub fn satisfied(&self) -> bool {
        self.approvers.len() as u32 >= self.needed
    }
}

impl Tally {
    /// Whether every rule is satisfied and nobody rejected.
    pub fn passes(&self) -> bool {
        self.rejected_by.is_none() && self.rules.iter().all(RuleTally::satisfied)
    }

    /// The unsatisfied rules, in words.
    pub fn missing(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| !r.satisfied())
            .map(|r| {
                let have = if r.approvers.is_empty() {
                    "none yet".to_owned()
                } else {
                    r.approvers.join(", ")
                };
                format!(
                    "{} needs {} distinct approver{} ({have})",
                    r.name,
                    r.needed,
                    if r.needed == 1 { "" } else { "s" }
                )
            })
            .collect()
    }
}

/// Counts the approvals of `release` for `environment` against the gates' rules.
pub fn tally(
    gates: &ValidGates,
    release: &ReleaseView,
    environment: &str,
    approvals: &[ApprovalView],
) -> Tally {
    let mut result = Tally::default();
    let mut approvers: Vec<BTreeSet<String>> = vec![BTreeSet::new(); gates.approvals.len()];
    let mut relevant: Vec<&ApprovalView> = approvals
        .iter()
        .filter(|a| a.spec.release == release.name && a.spec.environment == environment)
        .collect();
    relevant.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    for approval in relevant {
        let who = approval.spec.approver.as_str();
        match approval.spec.decision {
            Verdict::Reject => {
                if result.rejected_by.is_none() {
                    result.rejected_by = Some((who.to_owned(), approval.spec.comment.clone()));
                }
                continue;
            }
            Verdict::Approve => {}
            Verdict::PromoteNow
            | Verdict::Retry
            | Verdict::Rollback
            | Verdict::PromoteStep
            | Verdict::AbortCanary => continue,
        }
        if !gates.allow_self_approval
            && let Some(own) = release.spec.self_approval(who)
        {
            let why = match own {
                SelfApproval::Author => {
                    format!("{who} is the release's author and cannot approve it")
                }
                SelfApproval::Requester => {
                    format!("{who} requested the release and cannot approve it")
                }
            };
            result.ignored.push((approval.name.clone(), why));
            continue;
        }
        let mut counted = false;
        for (rule, set) in gates.approvals.iter().zip(approvers.iter_mut()) {
            if rule.admits(who, &approval.spec.groups) {
                set.insert(who.to_owned());
                counted = true;
            }
        }
        if counted {
            result.counted.push(approval.name.clone());
        } else if !gates.approvals.is_empty() {
            result.ignored.push((
                approval.name.clone(),
                format!("{who} is not in the users or groups of any approval rule"),
            ));
        }
    }
    result.rules = gates
        .approvals
        .iter()
        .zip(approvers)
        .map(|(rule, set)| RuleTally {
            name: rule.name.clone(),
            needed: rule.count,
            approvers: set.into_iter().collect(),
        })
        .collect();
    result
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::api::{ApprovalRule, ApprovalSpec, ReleaseSpec, Source};

    fn release() -> ReleaseView {
        ReleaseView {
            name: "shop-1".into(),
            created: Timestamp::UNIX_EPOCH,
            spec: ReleaseSpec {
                pipeline: "shop".into(),
                version: "1".into(),
                artifacts: [("api".to_owned(), "api:1".to_owned())].into(),
                source: Source {
                    git_ref: "main".into(),
                    commit: None,
                    author: Some("alice".into()),
                },
                requested_by: Some("ci-bot".into()),
                checks: vec![],
            },
            status: None,
        }
    }

    fn approval(name: &str, who: &str, groups: &[&str], decision: Verdict) -> ApprovalView {
        ApprovalView {
            name: name.into(),
            created: Timestamp::UNIX_EPOCH,
            spec: ApprovalSpec {
                release: "shop-1".into(),
                environment: "prod".into(),
                decision,
                approver: who.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                comment: None,
            },
            status: None,
        }
    }

    fn gates(count: u32, allow_self: bool) -> ValidGates {
        ValidGates {
            approvals: vec![ApprovalRule {
                name: "release-managers".into(),
                count,
                groups: vec!["rm".into()],
                users: vec![],
            }],
            allow_self_approval: allow_self,
            ..ValidGates::default()
        }
    }

    #[test]
    fn prod_waits_for_a_second_distinct_approver() {
        let one = [
            approval("a1", "bob", &["rm"], Verdict::Approve),
            approval("a2", "bob", &["rm"], Verdict::Approve),
        ];
        let result = tally(&gates(2, false), &release(), "prod", &one);
        assert!(!result.passes());
        assert_eq!(
            result.missing(),
            ["release-managers needs 2 distinct approvers (bob)"]
        );
        let two = [
            approval("a1", "bob", &["rm"], Verdict::Approve),
            approval("a2", "carol", &["rm"], Verdict::Approve),
        ];
        assert!(tally(&gates(2, false), &release(), "prod", &two).passes());
    }

    #[test]
    fn the_author_and_the_requester_never_count_unless_self_approval_is_allowed() {
        let approvals = [
            approval("a1", "alice", &["rm"], Verdict::Approve),
            approval("a2", "ci-bot", &["rm"], Verdict::Approve),
        ];
        let result = tally(&gates(1, false), &release(), "prod", &approvals);
        assert!(!result.passes());
        assert_eq!(result.ignored.len(), 2);
        assert!(result.ignored[0].1.contains("author"));
        assert!(tally(&gates(1, true), &release(), "prod", &approvals).passes());
    }

    #[test]
    fn approvers_outside_the_rule_groups_do_not_count() {
        let approvals = [approval("a1", "mallory", &["interns"], Verdict::Approve)];
        let result = tally(&gates(1, false), &release(), "prod", &approvals);
        assert!(!result.passes());
        assert_eq!(
            result.ignored[0].1,
            "mallory is not in the users or groups of any approval rule"
        );
    }

    #[test]
    fn one_rejection_blocks_however_many_approvals() {
        let approvals = [
            approval("a1", "bob", &["rm"], Verdict::Approve),
            approval("a2", "carol", &["rm"], Verdict::Approve),
            approval("a3", "dave", &[], Verdict::Reject),
        ];
        let result = tally(&gates(2, false), &release(), "prod", &approvals);
        assert!(!result.passes());
        assert_eq!(result.rejected_by, Some(("dave".into(), None)));
    }

    #[test]
    fn approvals_for_another_environment_do_not_count() {
        let mut other = approval("a1", "bob", &["rm"], Verdict::Approve);
        other.spec.environment = "staging".into();
        assert!(!tally(&gates(1, false), &release(), "prod", &[other]).passes());
    }
}
