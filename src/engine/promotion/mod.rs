//! The promotion state machine of one environment: pre-deploy Jobs, rollout, verification,
//! success; or failure, rollback to the last good release, and Degraded if that fails too.
//!
//! Every step re-derives its actions from the status, so a decision repeated after a crash
//! asks for the same images and the same Jobs again, and nothing happens twice.
//!
//! - [`state`]: the typed promotion and its one conversion to and from the status.
//! - [`deploy`]: starting a deploy and moving it through its stages.
//! - [`canary`]: the canary steps of a deploy, before its rollout.
//! - [`rollback`]: starting and finishing a rollback.
//! - [`rollout`]: judging a rollout against what the workload controllers observed.
//! - [`verify`]: the verification checks and tests.
//! - [`steps`]: the Job steps of a stage (pre-deploy Jobs, verification tests).
//! - [`outcome`]: how a promotion ends: history, failure marks, Events, Degraded.
//! - [`note`]: what a promotion's change says of itself (its commit in GitOps mode).

mod canary;
mod deploy;
mod note;
mod outcome;
mod rollback;
mod rollout;
mod state;
mod steps;
mod verify;

pub use deploy::start_deploy;
pub use outcome::degrade;
pub use rollback::{Cause, start_rollback};
pub use state::{DeployStage, Promotion, RollbackTrigger};
pub use verify::{probes_hold, verify_probes};

use super::{
    context::Ctx,
    targets::{Desired, Targets},
};
use crate::{api::EnvironmentStatus, validation::ValidEnvironment};

/// Advances the promotion in flight by as many stages as the observations allow (say,
/// rollout done and a zero verification window).
///
/// Each pass either ends the promotion, leaves it in its stage (another pass at the same
/// instant would only repeat this one), or moves it to a later [`state::Position`]; there
/// are finitely many, so the loop ends.
pub fn advance(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    flight: &mut Option<Promotion>,
    targets: &Targets<'_>,
) {
    while let Some(promotion) = flight.take() {
        let before = promotion.position();
        *flight = match promotion {
            Promotion::Deploy(deploy) => deploy::advance(ctx, env, status, targets, deploy),
            Promotion::Rollback(rollback) => rollback::advance(ctx, env, status, targets, rollback),
        };
        if flight.as_ref().is_none_or(|p| p.position() <= before) {
            return;
        }
    }
}

/// What a promotion targets: a release's images, or the baseline.
struct Target {
    desired: Desired,
    label: String,
}

fn target_of(
    ctx: &Ctx<'_>,
    status: &EnvironmentStatus,
    targets: &Targets<'_>,
    release: Option<&str>,
) -> Result<Target, String> {
    match release {
        Some(name) => {
            let release = ctx
                .releases
                .get(name)
                .ok_or_else(|| format!("release {name} no longer exists"))?;
            Ok(Target {
                desired: targets.release_images(release)?,
                label: release.spec.version.clone(),
            })
        }
        None if !status.baseline.is_empty() => Ok(Target {
            desired: status.baseline.clone(),
            label: "the baseline images".into(),
        }),
        None => Err("there is no last good release and no recorded baseline".into()),
    }
}
