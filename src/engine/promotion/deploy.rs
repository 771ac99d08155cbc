//! A deploy: started by the gates, then pre-deploy Jobs, rollout and verification.

use super::{
    Target, canary, outcome,
    rollout::{self, Rollout},
    state::{Deploy, DeployStage, Promotion, RollingOut},
    steps::{self, StepState},
    target_of,
    verify::{self, Check},
};
use crate::{
    api::{EnvironmentPhase, EnvironmentStatus, ReleaseRef},
    engine::{
        context::Ctx,
        decision::{EventType, MetricEvent, Regarding},
        gate::Gate,
        gates::attempt,
        jobs::JobPurpose,
        snapshot::ReleaseView,
        targets::Targets,
    },
    validation::{ValidEnvironment, format_duration},
};

/// Starts deploying `release` into the environment: the promotion now in flight.
pub fn start_deploy(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    release: &ReleaseView,
    requested_by: Option<String>,
    gates_passed: &[Gate],
) -> Promotion {
    // Every deploy starts with the pre-deploy stage (perhaps empty), so that the switch to
    // the rollout always goes through one place.
    let promotion = Promotion::Deploy(Deploy {
        release: release.name.clone(),
        version: release.spec.version.clone(),
        started_at: ctx.now,
        attempt: attempt(ctx, &release.name, &env.name),
        requested_by: requested_by.clone(),
        stage: DeployStage::PreDeploy {
            step: 0,
            since: ctx.now,
        },
    });
    status.phase = Some(EnvironmentPhase::Deploying);
    let gates: Vec<&'static str> = gates_passed.iter().map(|g| g.label()).collect();
    let passed = if gates.is_empty() {
        "no gates".to_owned()
    } else {
        format!("gates passed: {}", gates.join(", "))
    };
    let by = requested_by
        .map(|who| format!(", promoted now by {who}"))
        .unwrap_or_default();
    let message = format!(
        "deploying {} to {} ({passed}{by})",
        release.spec.version, env.name
    );
    status.message = Some(message.clone());
    ctx.event(
        Regarding::Pipeline,
        EventType::Normal,
        "PromotionStarted",
        &env.name,
        message.clone(),
        Some(MetricEvent::GatesPassed { gates }),
    );
    ctx.event(
        Regarding::Release(release.name.clone()),
        EventType::Normal,
        "PromotionStarted",
        &env.name,
        message,
        None,
    );
    promotion
}

/// One pass over a deploy: what it is after what was observed.
pub(super) fn advance(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    deploy: Deploy,
) -> Option<Promotion> {
    let target = match target_of(ctx, status, targets, Some(&deploy.release)) {
        Ok(target) => target,
        // Before the rollout the targets never changed: nothing to roll back (a canary
        // still there is deleted as garbage).
        Err(reason)
            if matches!(
                deploy.stage,
                DeployStage::PreDeploy { .. } | DeployStage::Canary { .. }
            ) =>
        {
            return outcome::fail_before_change(ctx, env, status, &deploy, reason);
        }
        Err(reason) => {
            return outcome::verification_failed(ctx, env, status, targets, &deploy, reason);
        }
    };
    match deploy.stage.clone() {
        DeployStage::PreDeploy { step, since } => {
            pre_deploy(ctx, env, status, targets, &target, deploy, step, since)
        }
        DeployStage::Canary {
            step,
            since,
            ready_at,
        } => canary::advance(
            ctx, env, status, targets, &target, deploy, step, since, ready_at,
        ),
        DeployStage::Rollout(rolling) => {
            rolling_out(ctx, env, status, targets, &target, deploy, rolling)
        }
        DeployStage::Verify { since } => {
            let note = deploy.note(ctx, env);
            ctx.actions
                .extend(targets.set_images(&target.desired, &note));
            match verify::verification(ctx, env, targets, &deploy.release, deploy.attempt, since) {
                Check::Failed(reason) => {
                    outcome::verification_failed(ctx, env, status, targets, &deploy, reason)
                }
                Check::Pending => Some(Promotion::Deploy(deploy)),
                Check::Passed => {
                    outcome::succeed(ctx, env, status, &deploy);
                    None
                }
            }
        }
    }
}

/// Pre-deploy Job `step`, started at `since`: the next step, the rollout, or a failure
/// before anything changed.
#[allow(clippy::too_many_arguments)]
fn pre_deploy(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    target: &Target,
    mut deploy: Deploy,
    step: u32,
    since: jiff::Timestamp,
) -> Option<Promotion> {
    let Some(job) = env.pre_deploy.get(step as usize) else {
        return Some(canary::begin(ctx, env, status, targets, target, deploy));
    };
    let reason = match steps::run(
        ctx,
        env,
        &deploy.release,
        JobPurpose::PreDeploy,
        job,
        deploy.attempt,
        since,
    ) {
        StepState::Succeeded => {
            let next = step + 1;
            if next as usize >= env.pre_deploy.len() {
                return Some(canary::begin(ctx, env, status, targets, target, deploy));
            }
            deploy.stage = DeployStage::PreDeploy {
                step: next,
                since: ctx.now,
            };
            return Some(Promotion::Deploy(deploy));
        }
        StepState::Running => return Some(Promotion::Deploy(deploy)),
        StepState::Failed(message) => format!("pre-deploy Job {} failed: {message}", job.name),
        StepState::TimedOut => format!(
            "pre-deploy Job {} did not finish within {}",
            job.name,
            format_duration(job.timeout)
        ),
    };
    outcome::fail_before_change(ctx, env, status, &deploy, reason)
}

/// The rollout stage: the targets take the release.
pub(super) fn begin_rollout(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    target: &Target,
    mut deploy: Deploy,
) -> Promotion {
    deploy.stage = DeployStage::Rollout(RollingOut::starting(ctx.now));
    status.current = Some(ReleaseRef {
        release: deploy.release.clone(),
        version: target.label.clone(),
        since: Some(ctx.now_time()),
    });
    // The environment no longer runs what downstream soaked on.
    status.healthy = None;
    status.healthy_since = None;
    status.message = Some(format!("rolling out {} to {}", target.label, env.name));
    let note = deploy.note(ctx, env);
    ctx.actions
        .extend(targets.set_images(&target.desired, &note));
    ctx.wake_at(Ctx::after(ctx.now, env.verify.progress_deadline));
    Promotion::Deploy(deploy)
}

/// The rollout stage: verification once every target rolled out.
fn rolling_out(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    target: &Target,
    mut deploy: Deploy,
    mut rolling: RollingOut,
) -> Option<Promotion> {
    let note = deploy.note(ctx, env);
    ctx.actions
        .extend(targets.set_images(&target.desired, &note));
    let was_unobserved = rolling.unobserved_since.is_some();
    match rollout::judge(ctx, env, targets, target, &mut rolling) {
        Rollout::Complete => {
            deploy.stage = DeployStage::Verify { since: ctx.now };
            status.phase = Some(EnvironmentPhase::Verifying);
            status.message = Some(format!(
                "{} rolled out to {}; verifying",
                target.label, env.name
            ));
            return Some(Promotion::Deploy(deploy));
        }
        Rollout::Failed(reason) => {
            return outcome::verification_failed(ctx, env, status, targets, &deploy, reason);
        }
        Rollout::Unobserved(waiting) => {
            status.message = Some(format!("rolling out {}: {waiting}", target.label));
        }
        // A workload that will not finish by itself says so; otherwise, observed at last,
        // back to the rollout's own message.
        Rollout::InProgress => match targets.notes() {
            Some(note) => {
                status.message = Some(format!(
                    "rolling out {} to {}: {note}",
                    target.label, env.name
                ));
            }
            None if was_unobserved => {
                status.message = Some(format!("rolling out {} to {}", target.label, env.name));
            }
            None => {}
        },
    }
    deploy.stage = DeployStage::Rollout(rolling);
    Some(Promotion::Deploy(deploy))
}
