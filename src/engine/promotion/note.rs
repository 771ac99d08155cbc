//! What a promotion's change says about itself: the message and trailers of its commit
//! in GitOps mode.

use super::state::{Deploy, Rollback};
use crate::{
    api::Decision as Verdict,
    engine::{
        context::Ctx,
        decision::{ChangeNote, CommitPurpose},
        gates::gates_that_can_block,
    },
    validation::ValidEnvironment,
};

impl Deploy {
    /// A deploy's change: the release, the gates it passed (or who promoted it now) and
    /// its approvers.
    pub(super) fn note(&self, ctx: &Ctx<'_>, env: &ValidEnvironment) -> ChangeNote {
        let mut details = Vec::new();
        match &self.requested_by {
            Some(who) => details.push(format!("promoted now by {who}")),
            None if env.pin.as_ref().is_some_and(|p| p.release == self.release) => {
                if let Some(pin) = &env.pin {
                    details.push(format!("pinned: {}", pin.reason));
                }
            }
            None => {
                let gates = gates_that_can_block(env);
                details.push(if gates.is_empty() {
                    "no gates".to_owned()
                } else {
                    format!("gates passed: {}", gates.join(", "))
                });
            }
        }
        let approvers: Vec<&str> = ctx
            .approvals_of(Verdict::Approve, &self.release, &env.name)
            .iter()
            .map(|a| a.spec.approver.as_str())
            .collect();
        if !approvers.is_empty() {
            details.push(format!("approved by {}", approvers.join(", ")));
        }
        ChangeNote {
            purpose: CommitPurpose::Deploy,
            release: Some(self.release.clone()),
            version: self.version.clone(),
            details,
        }
    }
}

impl Rollback {
    /// A rollback's change: what it restores, and why.
    pub(super) fn note(&self, label: &str) -> ChangeNote {
        let mut details = vec![self.reason.clone()];
        if let Some(failed) = &self.failed_release {
            details.push(format!("rolled back from {failed}"));
        }
        if let Some(who) = &self.requested_by {
            details.push(format!("asked by {who}"));
        }
        ChangeNote {
            purpose: CommitPurpose::Rollback,
            release: self.to.as_ref().map(|r| r.release.clone()),
            version: label.to_owned(),
            details,
        }
    }
}
