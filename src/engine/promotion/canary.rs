//! The canary steps of a deploy (`rollout.steps`): a canary beside each target takes the
//! step's share (of the pods, or of the route's traffic); the environment's verification
//! probes and the step's own metrics must hold for the step's pause, counted from when
//! every canary is ready and the route carries the share. Then the next step,
//! or, after the last, the targets take the release. A step that fails aborts: the
//! canaries go (the targets never changed), and the release is Failed here.

use jiff::Timestamp;

use super::{
    Target, deploy, outcome,
    state::{Deploy, DeployStage, Promotion},
    verify::{probes_hold, verify_probes, wake_for_next_result},
};
use crate::{
    api::{Decision as Verdict, EnvironmentPhase, EnvironmentStatus},
    engine::{
        canary::{self, Readiness},
        context::{Ctx, elapsed},
        decision::{EventType, MetricEvent, Regarding},
        snapshot::ProbePurpose,
        targets::Targets,
    },
    validation::{ValidEnvironment, ValidMetric, format_duration},
};

/// The stage after the pre-deploy Jobs: the first canary step, or the rollout if the
/// environment has none.
pub(super) fn begin(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    target: &Target,
    mut deploy: Deploy,
) -> Promotion {
    if env.rollout.as_ref().is_none_or(|r| r.steps.is_empty()) {
        return deploy::begin_rollout(ctx, env, status, targets, target, deploy);
    }
    step_started(ctx, env, &deploy, 0);
    deploy.stage = DeployStage::Canary {
        step: 0,
        since: ctx.now,
        ready_at: None,
    };
    Promotion::Deploy(deploy)
}

/// Says that canary step `step` starts.
fn step_started(ctx: &mut Ctx<'_>, env: &ValidEnvironment, deploy: &Deploy, step: u32) {
    let Some(rollout) = env.rollout.as_ref() else {
        return;
    };
    let Some(spec) = rollout.steps.get(step as usize) else {
        return;
    };
    let message = format!(
        "canary {}% of {} in {} (step {} of {}), for {} once ready",
        spec.weight,
        deploy.version,
        env.name,
        step + 1,
        rollout.steps.len(),
        format_duration(spec.pause)
    );
    ctx.event(
        Regarding::Pipeline,
        EventType::Normal,
        "CanaryStep",
        &env.name,
        message,
        None,
    );
}

/// One pass over canary step `step`, asked at `since`.
#[allow(clippy::too_many_arguments)]
pub(super) fn advance(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    target: &Target,
    mut deploy: Deploy,
    step: u32,
    since: Timestamp,
    ready_at: Option<Timestamp>,
) -> Option<Promotion> {
    // The spec lost its steps (or this one) mid-flight: what remains is the rollout.
    let Some(spec) = env
        .rollout
        .as_ref()
        .and_then(|r| r.steps.get(step as usize))
    else {
        return Some(deploy::begin_rollout(
            ctx, env, status, targets, target, deploy,
        ));
    };
    let last = env.rollout.as_ref().map_or(0, |r| r.steps.len()) as u32 - 1;
    let share = format!(
        "canary {}% of {} in {} (step {} of {})",
        spec.weight,
        deploy.version,
        env.name,
        step + 1,
        last + 1
    );
    status.phase = Some(EnvironmentPhase::Deploying);
    let failed = |reason: String| {
        format!(
            "canary step {} ({}%) failed: {reason}",
            step + 1,
            spec.weight
        )
    };
    if let Some(by) = ctx.override_after(
        Verdict::AbortCanary,
        &deploy.release,
        &env.name,
        deploy.started_at,
    ) {
        ctx.record_override(by);
        let reason = format!(
            "canary step {} ({}%) aborted by {}",
            step + 1,
            spec.weight,
            by.spec.approver
        );
        return abort(ctx, env, status, &deploy, since, reason);
    }
    ctx.actions
        .extend(canary::set_canaries(targets, &target.desired, spec.weight));
    // Traffic moves to a canary only once it is ready (by the route's weights, with
    // `gatewayAPI`); the step's pause counts from when both are.
    let readiness =
        match canary::readiness(&ctx.snap.workloads, targets, &target.desired, spec.weight) {
            Readiness::Ready => {
                let (readiness, shift) = canary::traffic(&ctx.snap.routes, env, spec.weight);
                ctx.actions.extend(shift);
                readiness
            }
            not_ready => not_ready,
        };
    let ready_at = match (ready_at, readiness) {
        (_, Readiness::Failed(reason)) => {
            return abort(ctx, env, status, &deploy, since, failed(reason));
        }
        (Some(at), Readiness::Ready) => at,
        (None, Readiness::Ready) => ctx.now,
        (_, Readiness::Waiting(what)) => {
            let deadline = Ctx::after(since, env.verify.progress_deadline);
            if ctx.now >= deadline {
                let reason = format!(
                    "the canary was not ready within {} ({what})",
                    format_duration(env.verify.progress_deadline)
                );
                return abort(ctx, env, status, &deploy, since, failed(reason));
            }
            ctx.wake_at(deadline);
            status.message = Some(format!("{share}: {what}"));
            deploy.stage = DeployStage::Canary {
                step,
                since,
                ready_at: None,
            };
            return Some(Promotion::Deploy(deploy));
        }
    };
    deploy.stage = DeployStage::Canary {
        step,
        since,
        ready_at: Some(ready_at),
    };
    let mut probes = verify_probes(ctx, env);
    for metric in &spec.metrics {
        let own = ValidMetric {
            name: format!("step {} {}", step + 1, metric.name),
            ..metric.clone()
        };
        let id = ctx.request_metric(
            &env.name,
            ProbePurpose::Verify,
            &own,
            std::time::Duration::from_secs(30),
        );
        probes.push((id, 1));
    }
    let all_passing = match probes_hold(ctx, &probes, ready_at) {
        Err(reason) => return abort(ctx, env, status, &deploy, since, failed(reason)),
        Ok(all_passing) => all_passing,
    };
    // A person may end the step now: the rest of the pause, and checks not yet reported,
    // are skipped (a failed one aborted above).
    let promoted_by = ctx.override_after(Verdict::PromoteStep, &deploy.release, &env.name, since);
    let ends = Ctx::after(ready_at, spec.pause);
    if promoted_by.is_none() && ctx.now < ends {
        ctx.wake_at(ends);
        status.message = Some(format!(
            "{share} for {}, {} left",
            format_duration(spec.pause),
            format_duration(elapsed(ctx.now, ends))
        ));
        return Some(Promotion::Deploy(deploy));
    }
    if promoted_by.is_none() && !all_passing {
        // A probe has not reported since the canary was ready, or its latest result
        // failed (not yet failureThreshold times): wait for its next result.
        wake_for_next_result(ctx, env);
        status.message = Some(format!("{share}: waiting for every check to pass"));
        return Some(Promotion::Deploy(deploy));
    }
    let metric = MetricEvent::CanaryStep {
        passed: true,
        duration: elapsed(since, ctx.now),
    };
    let (reason, message) = match promoted_by {
        Some(by) => {
            ctx.record_override(by);
            let held = format!(
                "after {} of its {} pause",
                format_duration(elapsed(ready_at, ctx.now)),
                format_duration(spec.pause)
            );
            let message = format!(
                "{} promoted canary {}% of {} in {} {held}",
                by.spec.approver, spec.weight, deploy.version, env.name
            );
            ("CanaryStepPromoted", message)
        }
        None => {
            let message = format!(
                "canary {}% of {} in {} held {} with every check passing",
                spec.weight,
                deploy.version,
                env.name,
                format_duration(spec.pause)
            );
            ("CanaryStepPassed", message)
        }
    };
    ctx.event(
        Regarding::Pipeline,
        EventType::Normal,
        reason,
        &env.name,
        message,
        Some(metric),
    );
    if step >= last {
        return Some(deploy::begin_rollout(
            ctx, env, status, targets, target, deploy,
        ));
    }
    step_started(ctx, env, &deploy, step + 1);
    deploy.stage = DeployStage::Canary {
        step: step + 1,
        since: ctx.now,
        ready_at: None,
    };
    Some(Promotion::Deploy(deploy))
}

/// The step failed, or a person aborted it: the canaries go (the targets never changed)
/// and the release is Failed here, with the usual rollback rules.
fn abort(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    deploy: &Deploy,
    since: Timestamp,
    reason: String,
) -> Option<Promotion> {
    let duration = elapsed(since, ctx.now);
    outcome::canary_aborted(ctx, env, status, deploy, reason, duration);
    None
}
