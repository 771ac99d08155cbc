//! `Pipeline.status`: the engine's whole memory. Everything needed to continue after a
//! restart lives here, so that a crash at any instant loses nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::common::Conditions;

/// What Greenlight observes and decides for a pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, per the Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Conditions,
    /// One line for `kubectl get`: each environment and the version it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The state of each environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub environments: Vec<EnvironmentStatus>,
    /// Overrides people asked for (promote now, retry, rollback), newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<OverrideRecord>,
}

/// The state of one environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Name of the environment.
    pub name: String,
    /// What the environment is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<EnvironmentPhase>,
    /// A sentence on what happens now or what blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The release it runs. Unset while it runs its baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<ReleaseRef>,
    /// Whether the current release (or baseline) is healthy now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Since when the current release has been verified and continuously healthy; what
    /// `soak` gates downstream measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Time>,
    /// Since when the environment has been unhealthy, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<Time>,
    /// The last release verified here: the rollback target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good: Option<ReleaseRef>,
    /// The images found before Greenlight first deployed here, by `deployment/container`:
    /// the rollback target until a release has been verified.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub baseline: BTreeMap<String, String>,
    /// The deploy or rollback in flight, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionState>,
    /// Releases that failed here. They are never deployed here again unless a person
    /// asks for a retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<ReleaseMark>,
    /// Results of gate test Jobs run for candidates of this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gate_tests: Vec<GateTestRecord>,
    /// What comes next: the newest candidate waiting to enter, and what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Recent promotions, newest first, at most `spec.historyLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PromotionRecord>,
    /// When drifted images were restored lately (within the last ten minutes, at most
    /// three): drift once more in that time is a fight with another field manager.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_repairs: Vec<Time>,
    /// Set while drift repair is stopped because another field manager keeps setting the
    /// images back; cleared when the images match again, or a person asks for a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_fight: Option<DriftFight>,
    /// GitOps mode: set while a person's commit holds the environment (it changed the
    /// images after Greenlight's last commit); cleared when the branch is back on what
    /// Greenlight wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_change: Option<GitChangeHold>,
}

/// A person's commit that changed an environment's images in Git: Greenlight does not
/// overwrite it, and holds new promotions, until the branch is back on what Greenlight
/// wrote or a person asks for a retry of the current release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitChangeHold {
    /// The commit.
    pub commit: String,
    /// Its author, `Name <email>`.
    pub author: String,
    /// Its first line.
    pub summary: String,
    /// Since when the environment is held.
    pub since: Time,
    /// Who asked for a retry of the current release, which overwrites the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_by: Option<String>,
}

/// A fight over a target's images with another field manager (Argo CD or Flux
/// self-healing from Git, say): Greenlight stops repairing and says so.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftFight {
    /// Since when repair is stopped.
    pub since: Time,
    /// The other field managers of the drifted images (from `managedFields`); empty when
    /// none could be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<String>,
    /// What drifted: `workload/container runs image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drifted: Vec<String>,
}

impl EnvironmentStatus {
    /// The releases verified here, each once, as (release, version): the last good one,
    /// then the history's successful promotions, newest first. What a person may roll
    /// back to.
    pub fn verified_releases(&self) -> Vec<(&str, &str)> {
        let good = self
            .last_good
            .iter()
            .map(|g| (g.release.as_str(), g.version.as_str()));
        let succeeded = self
            .history
            .iter()
            .filter(|h| h.result == PromotionResult::Succeeded)
            .map(|h| (h.release.as_str(), h.version.as_str()));
        let mut out: Vec<(&str, &str)> = Vec::new();
        for (release, version) in good.chain(succeeded) {
            if !release.is_empty() && !out.iter().any(|(r, _)| *r == release) {
                out.push((release, version));
            }
        }
        out
    }

    /// The current release, if it is the one verified here (not one still being deployed
    /// or verified, nor the baseline).
    pub fn verified_current(&self) -> Option<&ReleaseRef> {
        self.current.as_ref().filter(|c| {
            self.last_good
                .as_ref()
                .is_some_and(|g| g.release == c.release)
        })
    }

    /// The environment's last change: its current release taking over (a deploy or a
    /// rollback) or its last promotion ending. A rollback request counts only if made
    /// after it, so each change needs a new one.
    pub fn last_change(&self) -> Option<jiff::Timestamp> {
        [
            self.current.as_ref().and_then(|c| c.since.as_ref()),
            self.history.first().and_then(|h| h.finished_at.as_ref()),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.0)
        .max()
    }
}

/// What an environment is doing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum EnvironmentPhase {
    /// Runs its current release and nothing is in flight.
    Idle,
    /// Running pre-deploy Jobs or rolling out a new release.
    Deploying,
    /// The rollout is done; verification checks are running.
    Verifying,
    /// Setting the images back to the last good release.
    RollingBack,
    /// A rollback failed, or a failed release is held because automatic rollback is off:
    /// no promotion enters until a person acts.
    Degraded,
}

/// A release as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRef {
    /// Name of the Release object.
    pub release: String,
    /// Its `spec.version`.
    pub version: String,
    /// When it took this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// A deploy or rollback in flight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionState {
    /// Deploy a release, or roll back to the last good one.
    pub kind: PromotionKind,
    /// The release being deployed; unset when rolling back to the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Its version, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The step in progress.
    pub stage: PromotionStage,
    /// Index of the pre-deploy Job running, during `PreDeploy`; of the canary step,
    /// during `Canary`.
    #[serde(default)]
    pub step: u32,
    /// When the promotion started.
    pub started_at: Time,
    /// When the current stage started (for Verify: when the rollout completed).
    pub stage_started_at: Time,
    /// During a rollout: when every target's workload controller had observed the new
    /// spec. The progress deadline counts from here, so a lagging control plane never
    /// fails a rollout whose new pods it has not even tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_observed_at: Option<Time>,
    /// During a rollout: since when a workload controller has not observed the new spec
    /// (unset once it has). Waiting longer than the progress deadline sets the Pipeline
    /// condition `WorkloadControllerLagging`; it never fails the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unobserved_since: Option<Time>,
    /// During a canary step: when every canary was ready. The step's pause counts from
    /// here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_at: Option<Time>,
    /// During a canary step: the step's share for the canary, in percent (of the route's
    /// traffic with `rollout.gatewayAPI`, else of the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<u32>,
    /// Retries of this release here so far; part of its Job names.
    #[serde(default)]
    pub attempt: u32,
    /// Who asked, when a person's override started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// For a rollback: the release that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_release: Option<String>,
    /// For a rollback: what triggered it (`verification`, `unhealthy`, `manual`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// For a rollback: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Deploy forward or roll back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PromotionKind {
    /// Deploy a new release.
    Deploy,
    /// Restore the last good release (or the baseline).
    Rollback,
}

/// The steps of a promotion.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PromotionStage {
    /// Pre-deploy Jobs run, one after another.
    PreDeploy,
    /// A canary beside each target takes a growing share, step by step (`rollout.steps`);
    /// the targets still run the release before.
    Canary,
    /// Images are set; waiting for every target Deployment to roll out.
    Rollout,
    /// Rolled out; verification checks must hold for the window.
    Verify,
}

/// A release marked in an environment, with when and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseMark {
    /// Name of the Release object.
    pub release: String,
    /// When.
    pub at: Time,
    /// Why.
    pub reason: String,
}

/// The outcome of one gate test Job for one candidate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateTestRecord {
    /// The candidate release.
    pub release: String,
    /// The `gates.tests` entry.
    pub test: String,
    /// Retry attempt the run belongs to.
    #[serde(default)]
    pub attempt: u32,
    /// Whether the Job succeeded.
    pub passed: bool,
    /// When it finished.
    pub at: Time,
    /// The Job's termination message or failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One promotion into an environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRecord {
    /// Name of the Release object (empty for a rollback to the baseline).
    pub release: String,
    /// Its `spec.version`.
    pub version: String,
    /// How it ended.
    pub result: PromotionResult,
    /// When the deploy started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Why it ended that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asked, for promotions started by a person's override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// How a promotion ended; these are the `result` label values of
/// `greenlight_promotions_total`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PromotionResult {
    /// Deployed and verified.
    Succeeded,
    /// Failed before or during verification and was held (automatic rollback off, or a
    /// pre-deploy Job failed before anything changed).
    Failed,
    /// Failed verification and was rolled back.
    RolledBack,
    /// A newer release went first.
    Superseded,
}

impl PromotionResult {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Superseded => "superseded",
        }
    }
}

/// An override a person asked for, as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideRecord {
    /// The Approval object that carried it.
    pub approval: String,
    /// `PromoteNow`, `Retry` or `Rollback`.
    pub decision: super::Decision,
    /// The release it concerns.
    pub release: String,
    /// The environment it concerns.
    pub environment: String,
    /// Who asked.
    pub requested_by: String,
    /// When it took effect.
    pub at: Time,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Time {
        Time(text.parse().unwrap())
    }

    fn reference(release: &str, since: &str) -> ReleaseRef {
        ReleaseRef {
            release: release.into(),
            version: release.replace("shop-", "").replace('-', "."),
            since: Some(at(since)),
        }
    }

    fn promotion(release: &str, result: PromotionResult, finished: &str) -> PromotionRecord {
        PromotionRecord {
            release: release.into(),
            version: release.replace("shop-", "").replace('-', "."),
            result,
            started_at: None,
            finished_at: Some(at(finished)),
            reason: None,
            requested_by: None,
        }
    }

    #[test]
    fn verified_releases_are_the_last_good_then_successes_newest_first_each_once() {
        let status = EnvironmentStatus {
            last_good: Some(reference("shop-1-2-0", "2026-11-20T10:00:00Z")),
            history: vec![
                promotion(
                    "shop-1-3-0",
                    PromotionResult::RolledBack,
                    "2026-11-21T10:00:00Z",
                ),
                promotion(
                    "shop-1-2-0",
                    PromotionResult::Succeeded,
                    "2026-11-20T10:00:00Z",
                ),
                promotion("", PromotionResult::Succeeded, "2026-11-19T10:00:00Z"),
                promotion(
                    "shop-1-1-0",
                    PromotionResult::Succeeded,
                    "2026-11-18T10:00:00Z",
                ),
            ],
            ..Default::default()
        };
        assert_eq!(
            status.verified_releases(),
            vec![("shop-1-2-0", "1.2.0"), ("shop-1-1-0", "1.1.0")]
        );
    }

    #[test]
    fn the_last_change_is_the_later_of_the_current_release_and_the_last_promotion() {
        let mut status = EnvironmentStatus::default();
        assert_eq!(status.last_change(), None);
        status.current = Some(reference("shop-1-2-0", "2026-11-20T10:00:00Z"));
        status.history = vec![promotion(
            "shop-1-3-0",
            PromotionResult::Failed,
            "2026-11-21T09:00:00Z",
        )];
        assert_eq!(
            status.last_change(),
            Some("2026-11-21T09:00:00Z".parse().unwrap())
        );
        // A rollback sets the current release without a history entry.
        status.current = Some(reference("shop-1-1-0", "2026-11-21T11:00:00Z"));
        assert_eq!(
            status.last_change(),
            Some("2026-11-21T11:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn the_current_release_is_verified_only_once_it_is_the_last_good_one() {
        let mut status = EnvironmentStatus {
            current: Some(reference("shop-1-3-0", "2026-11-21T10:00:00Z")),
            last_good: Some(reference("shop-1-2-0", "2026-11-20T10:00:00Z")),
            ..Default::default()
        };
        assert_eq!(status.verified_current(), None);
        status.last_good = status.current.clone();
        assert_eq!(
            status.verified_current().map(|c| c.release.as_str()),
            Some("shop-1-3-0")
        );
    }
}
