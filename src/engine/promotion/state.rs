//! A promotion in flight, typed: a deploy or a rollback, each in a stage that carries
//! exactly its data. `Pipeline.status` keeps the flat wire form ([`PromotionState`]);
//! [`Promotion::read`] and [`Promotion::to_status`] are the one boundary between the two.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{PromotionKind, PromotionStage, PromotionState},
    validation::ValidEnvironment,
};

/// A deploy or a rollback in flight in one environment.
#[derive(Clone, Debug, PartialEq)]
pub enum Promotion {
    /// A release on its way in.
    Deploy(Deploy),
    /// The environment on its way back to its last good release (or its baseline).
    Rollback(Rollback),
}

/// A release being deployed.
#[derive(Clone, Debug, PartialEq)]
pub struct Deploy {
    /// Name of the Release object.
    pub release: String,
    /// Its `spec.version`.
    pub version: String,
    /// When the deploy started.
    pub started_at: Timestamp,
    /// Retries of this release here so far; part of its Job names.
    pub attempt: u32,
    /// Who asked, when a person's override started it.
    pub requested_by: Option<String>,
    /// Where it stands.
    pub stage: DeployStage,
}

impl Deploy {
    /// When its current stage started (for Verify: when the rollout completed).
    pub fn stage_since(&self) -> Timestamp {
        match &self.stage {
            DeployStage::PreDeploy { since, .. }
            | DeployStage::Canary { since, .. }
            | DeployStage::Verify { since } => *since,
            DeployStage::Rollout(rolling) => rolling.since,
        }
    }
}

/// The stages of a deploy, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum DeployStage {
    /// Pre-deploy Job `step` (an index into `preDeploy`) runs, since `since`.
    PreDeploy {
        /// The Job step running.
        step: u32,
        /// When this step started.
        since: Timestamp,
    },
    /// Canary step `step` (an index into `rollout.steps`), asked at `since`: a canary
    /// beside each target runs the release with the step's share; the targets still run
    /// the release before. Its pause counts from `ready_at`, when every canary was ready.
    Canary {
        /// The canary step.
        step: u32,
        /// When the step was asked.
        since: Timestamp,
        /// When every canary was ready, once they were.
        ready_at: Option<Timestamp>,
    },
    /// The images are set; the workloads roll out.
    Rollout(RollingOut),
    /// Rolled out (at `since`); the verification checks must hold for the window.
    Verify {
        /// When the rollout completed.
        since: Timestamp,
    },
}

/// A rollout under way, judged on what the workload controllers have observed.
#[derive(Clone, Debug, PartialEq)]
pub struct RollingOut {
    /// When the images were set.
    pub since: Timestamp,
    /// When every workload controller had observed the new spec: the progress deadline
    /// counts from here.
    pub observed_at: Option<Timestamp>,
    /// Since when a workload controller has not observed the new spec, while it has not.
    pub unobserved_since: Option<Timestamp>,
}

impl RollingOut {
    /// A rollout that starts at `at`.
    pub fn starting(at: Timestamp) -> Self {
        Self {
            since: at,
            observed_at: None,
            unobserved_since: None,
        }
    }
}

/// A rollback: its target, why it happens, and its rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollback {
    /// The release restored; `None` restores the baseline images.
    pub to: Option<Restored>,
    /// When the rollback started.
    pub started_at: Timestamp,
    /// Who asked, for a person's rollback.
    pub requested_by: Option<String>,
    /// The release rolled away from.
    pub failed_release: Option<String>,
    /// What triggered it.
    pub trigger: RollbackTrigger,
    /// Why, in a sentence.
    pub reason: String,
    /// The rollout of the restored images.
    pub rollout: RollingOut,
}

/// The release a rollback restores.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored {
    /// Name of the Release object.
    pub release: String,
    /// Its `spec.version`.
    pub version: String,
}

/// What started a rollback; the `trigger` label of `greenlight_rollbacks_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackTrigger {
    /// The deployed release failed its rollout or its verification.
    Verification,
    /// A verified release turned unhealthy later (`rollback.afterVerification`).
    Unhealthy,
    /// A person asked (an Approval with `decision: Rollback`).
    Manual,
}

impl RollbackTrigger {
    /// Every trigger, in the order of [`crate::engine::ROLLBACK_TRIGGERS`].
    pub const ALL: [Self; 3] = [Self::Verification, Self::Unhealthy, Self::Manual];

    /// The status and metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::Unhealthy => "unhealthy",
            Self::Manual => "manual",
        }
    }

    fn parse(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.label() == label)
    }
}

/// Where a promotion stands, ordered: a pass that moves a promotion to a greater position
/// made progress. Positions are finite (a deploy's stages, then its rollback), so a loop
/// that goes on only while the position grows ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(u8, u8, u32);

impl Promotion {
    /// The typed form of `state`, or what makes it unreadable (a deploy without its
    /// release, a rollback in a pre-deploy stage, an unknown trigger).
    pub fn read(state: &PromotionState) -> Result<Self, String> {
        let started_at = state.started_at.0;
        let stage_since = state.stage_started_at.0;
        let rolling_out = RollingOut {
            since: stage_since,
            observed_at: state.rollout_observed_at.as_ref().map(|t| t.0),
            unobserved_since: state.unobserved_since.as_ref().map(|t| t.0),
        };
        match state.kind {
            PromotionKind::Deploy => {
                let (Some(release), Some(version)) = (&state.release, &state.version) else {
                    return Err("a deploy names no release or no version".into());
                };
                let stage = match state.stage {
                    PromotionStage::PreDeploy => DeployStage::PreDeploy {
                        step: state.step,
                        since: stage_since,
                    },
                    PromotionStage::Canary => DeployStage::Canary {
                        step: state.step,
                        since: stage_since,
                        ready_at: state.canary_ready_at.as_ref().map(|t| t.0),
                    },
                    PromotionStage::Rollout => DeployStage::Rollout(rolling_out),
                    PromotionStage::Verify => DeployStage::Verify { since: stage_since },
                };
                Ok(Self::Deploy(Deploy {
                    release: release.clone(),
                    version: version.clone(),
                    started_at,
                    attempt: state.attempt,
                    requested_by: state.requested_by.clone(),
                    stage,
                }))
            }
            PromotionKind::Rollback => {
                if state.stage != PromotionStage::Rollout {
                    return Err(format!("a rollback in stage {:?}", state.stage));
                }
                let to = match (&state.release, &state.version) {
                    (Some(release), Some(version)) => Some(Restored {
                        release: release.clone(),
                        version: version.clone(),
                    }),
                    (None, None) => None,
                    _ => return Err("a rollback names a release without its version".into()),
                };
                let trigger = state.trigger.as_deref().unwrap_or_default();
                let Some(trigger) = RollbackTrigger::parse(trigger) else {
                    return Err(format!("a rollback with the unknown trigger {trigger:?}"));
                };
                Ok(Self::Rollback(Rollback {
                    to,
                    started_at,
                    requested_by: state.requested_by.clone(),
                    failed_release: state.failed_release.clone(),
                    trigger,
                    reason: state.reason.clone().unwrap_or_default(),
                    rollout: rolling_out,
                }))
            }
        }
    }

    /// The wire form in `env`: [`Promotion::to_status`], with the share of the canary
    /// step under way (read from the spec, so that people, the plugin and the metrics see
    /// it without the spec at hand).
    pub fn to_status_in(&self, env: &ValidEnvironment) -> PromotionState {
        let mut state = self.to_status();
        if let Self::Deploy(Deploy {
            stage: DeployStage::Canary { step, .. },
            ..
        }) = self
        {
            state.canary_weight = env
                .rollout
                .as_ref()
                .and_then(|r| r.steps.get(*step as usize))
                .map(|s| s.weight);
        }
        state
    }

    /// The wire form, as `Pipeline.status` keeps it.
    pub fn to_status(&self) -> PromotionState {
        let time = |t: Timestamp| Time(t);
        match self {
            Self::Deploy(deploy) => {
                let mut ready = None;
                let (stage, step, since, rolling) = match &deploy.stage {
                    DeployStage::PreDeploy { step, since } => {
                        (PromotionStage::PreDeploy, *step, *since, None)
                    }
                    DeployStage::Canary {
                        step,
                        since,
                        ready_at,
                    } => {
                        ready = *ready_at;
                        (PromotionStage::Canary, *step, *since, None)
                    }
                    DeployStage::Rollout(rolling) => {
                        (PromotionStage::Rollout, 0, rolling.since, Some(rolling))
                    }
                    DeployStage::Verify { since } => (PromotionStage::Verify, 0, *since, None),
                };
                PromotionState {
                    kind: PromotionKind::Deploy,
                    release: Some(deploy.release.clone()),
                    version: Some(deploy.version.clone()),
                    stage,
                    step,
                    started_at: time(deploy.started_at),
                    stage_started_at: time(since),
                    rollout_observed_at: rolling.and_then(|r| r.observed_at).map(time),
                    unobserved_since: rolling.and_then(|r| r.unobserved_since).map(time),
                    canary_ready_at: ready.map(time),
                    canary_weight: None,
                    attempt: deploy.attempt,
                    requested_by: deploy.requested_by.clone(),
                    failed_release: None,
                    trigger: None,
                    reason: None,
                }
            }
            Self::Rollback(rollback) => PromotionState {
                kind: PromotionKind::Rollback,
                release: rollback.to.as_ref().map(|r| r.release.clone()),
                version: rollback.to.as_ref().map(|r| r.version.clone()),
                stage: PromotionStage::Rollout,
                step: 0,
                started_at: time(rollback.started_at),
                stage_started_at: time(rollback.rollout.since),
                rollout_observed_at: rollback.rollout.observed_at.map(time),
                unobserved_since: rollback.rollout.unobserved_since.map(time),
                canary_ready_at: None,
                canary_weight: None,
                attempt: 0,
                requested_by: rollback.requested_by.clone(),
                failed_release: rollback.failed_release.clone(),
                trigger: Some(rollback.trigger.label().to_owned()),
                reason: Some(rollback.reason.clone()),
            },
        }
    }

    /// Where it stands; see [`Position`].
    pub fn position(&self) -> Position {
        match self {
            Self::Deploy(deploy) => match deploy.stage {
                DeployStage::PreDeploy { step, .. } => Position(0, 0, step),
                DeployStage::Canary { step, .. } => Position(0, 1, step),
                DeployStage::Rollout(_) => Position(0, 2, 0),
                DeployStage::Verify { .. } => Position(0, 3, 0),
            },
            Self::Rollback(_) => Position(1, 0, 0),
        }
    }

    /// The release it moves to: the one deployed, or the one a rollback restores (none for
    /// the baseline).
    pub fn release(&self) -> Option<&str> {
        match self {
            Self::Deploy(deploy) => Some(&deploy.release),
            Self::Rollback(rollback) => rollback.to.as_ref().map(|to| to.release.as_str()),
        }
    }

    /// The version it moves to (none for the baseline).
    pub fn version(&self) -> Option<&str> {
        match self {
            Self::Deploy(deploy) => Some(&deploy.version),
            Self::Rollback(rollback) => rollback.to.as_ref().map(|to| to.version.as_str()),
        }
    }

    /// The release being deployed, if this is a deploy.
    pub fn deploying(&self) -> Option<&Deploy> {
        match self {
            Self::Deploy(deploy) => Some(deploy),
            Self::Rollback(_) => None,
        }
    }

    /// What people read: "deploying 1.4.2" or "rolling back to the baseline".
    pub fn doing(&self) -> String {
        match self {
            Self::Deploy(deploy) => format!("deploying {}", deploy.version),
            Self::Rollback(Rollback { to: Some(to), .. }) => {
                format!("rolling back to {}", to.version)
            }
            Self::Rollback(Rollback { to: None, .. }) => "rolling back to the baseline".into(),
        }
    }

    /// Whether it is in a canary step.
    pub fn in_canary(&self) -> bool {
        matches!(
            self,
            Self::Deploy(Deploy {
                stage: DeployStage::Canary { .. },
                ..
            })
        )
    }

    /// The rollout under way, in a stage that has one.
    pub fn rolling_out(&self) -> Option<&RollingOut> {
        match self {
            Self::Deploy(Deploy {
                stage: DeployStage::Rollout(rolling),
                ..
            })
            | Self::Rollback(Rollback {
                rollout: rolling, ..
            }) => Some(rolling),
            Self::Deploy(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn every_shape() -> Vec<Promotion> {
        let deploy = |stage| {
            Promotion::Deploy(Deploy {
                release: "shop-1-4-2".into(),
                version: "1.4.2".into(),
                started_at: at(0),
                attempt: 2,
                requested_by: Some("alice".into()),
                stage,
            })
        };
        let rollback = |to: Option<Restored>, trigger| {
            Promotion::Rollback(Rollback {
                to,
                started_at: at(10),
                requested_by: None,
                failed_release: Some("shop-1-4-2".into()),
                trigger,
                reason: "health check http[0] failed: 503".into(),
                rollout: RollingOut {
                    since: at(10),
                    observed_at: Some(at(12)),
                    unobserved_since: None,
                },
            })
        };
        vec![
            deploy(DeployStage::PreDeploy {
                step: 1,
                since: at(5),
            }),
            deploy(DeployStage::Canary {
                step: 1,
                since: at(5),
                ready_at: Some(at(6)),
            }),
            deploy(DeployStage::Rollout(RollingOut {
                since: at(6),
                observed_at: None,
                unobserved_since: Some(at(7)),
            })),
            deploy(DeployStage::Verify { since: at(8) }),
            rollback(
                Some(Restored {
                    release: "shop-1-4-1".into(),
                    version: "1.4.1".into(),
                }),
                RollbackTrigger::Verification,
            ),
            rollback(None, RollbackTrigger::Unhealthy),
            rollback(None, RollbackTrigger::Manual),
        ]
    }

    #[test]
    fn every_stage_reads_back_as_written() {
        for promotion in every_shape() {
            let wire = promotion.to_status();
            assert_eq!(Promotion::read(&wire), Ok(promotion.clone()), "{wire:?}");
        }
    }

    #[test]
    fn positions_order_the_stages_of_a_deploy_then_its_rollback() {
        let positions: Vec<Position> = every_shape().iter().map(Promotion::position).collect();
        assert!(positions[0] < positions[1], "pre-deploy before the canary");
        assert!(positions[1] < positions[2], "the canary before the rollout");
        assert!(positions[2] < positions[3], "rollout before verify");
        assert!(positions[3] < positions[4], "a deploy before its rollback");
    }

    #[test]
    fn an_impossible_state_is_an_error_not_a_guess() {
        let mut deploy = every_shape()[0].to_status();
        deploy.release = None;
        assert_eq!(
            Promotion::read(&deploy),
            Err("a deploy names no release or no version".into())
        );
        let mut rollback = every_shape()[4].to_status();
        rollback.stage = PromotionStage::PreDeploy;
        assert_eq!(
            Promotion::read(&rollback),
            Err("a rollback in stage PreDeploy".into())
        );
        rollback.stage = PromotionStage::Rollout;
        rollback.trigger = Some("cosmic rays".into());
        assert_eq!(
            Promotion::read(&rollback),
            Err("a rollback with the unknown trigger \"cosmic rays\"".into())
        );
        rollback.trigger = Some("manual".into());
        rollback.version = None;
        assert_eq!(
            Promotion::read(&rollback),
            Err("a rollback names a release without its version".into())
        );
    }
}
