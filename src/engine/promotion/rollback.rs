//! A rollback: back to the last good release (or the baseline), or Degraded if that fails.

use super::{
    outcome::degrade,
    rollout::{self, Rollout},
    state::{Promotion, Restored, Rollback, RollbackTrigger, RollingOut},
    target_of,
};
use crate::{
    api::{EnvironmentPhase, EnvironmentStatus, ReleaseRef},
    engine::{
        context::{Ctx, elapsed},
        decision::{EventType, MetricEvent, Regarding},
        targets::Targets,
    },
    validation::{ValidEnvironment, format_duration},
};

/// Why a rollback starts and who asked.
pub struct Cause {
    /// What triggered it.
    pub trigger: RollbackTrigger,
    /// The release rolled away from.
    pub failed_release: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
    /// Who asked, for a person's rollback.
    pub requested_by: Option<String>,
}

/// Starts restoring `to` (a release that ran here) or, with `None`, the baseline: the
/// rollback now in flight, or none if there is nothing to restore (then the environment
/// is Degraded).
pub fn start_rollback(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    to: Option<String>,
    cause: Cause,
) -> Option<Promotion> {
    let target = match target_of(ctx, status, targets, to.as_deref()) {
        Ok(target) => target,
        Err(why) => {
            degrade(ctx, env, status, format!("cannot roll back: {why}"));
            return None;
        }
    };
    let Cause {
        trigger,
        failed_release,
        reason,
        requested_by,
    } = cause;
    status.current = to.as_ref().map(|release| ReleaseRef {
        release: release.clone(),
        version: target.label.clone(),
        since: Some(ctx.now_time()),
    });
    status.phase = Some(EnvironmentPhase::RollingBack);
    status.healthy = None;
    status.healthy_since = None;
    if status.unhealthy_since.is_none() {
        status.unhealthy_since = Some(ctx.now_time());
    }
    let message = message(&env.name, &target.label, requested_by.as_deref(), &reason);
    status.message = Some(message.clone());
    ctx.event(
        Regarding::Pipeline,
        EventType::Warning,
        "RollbackStarted",
        &env.name,
        message,
        Some(MetricEvent::Rollback {
            trigger: trigger.label(),
        }),
    );
    let rollback = Rollback {
        to: to.map(|release| Restored {
            release,
            version: target.label.clone(),
        }),
        started_at: ctx.now,
        requested_by,
        failed_release,
        trigger,
        reason,
        rollout: RollingOut::starting(ctx.now),
    };
    ctx.actions
        .extend(targets.set_images(&target.desired, &rollback.note(&target.label)));
    ctx.wake_at(Ctx::after(ctx.now, env.verify.progress_deadline));
    Some(Promotion::Rollback(rollback))
}

/// One pass over a rollback: still rolling out, done (the environment restored), or
/// Degraded.
pub(super) fn advance(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    mut rollback: Rollback,
) -> Option<Promotion> {
    let to = rollback.to.as_ref().map(|r| r.release.as_str());
    let target = match target_of(ctx, status, targets, to) {
        Ok(target) => target,
        Err(why) => {
            degrade(ctx, env, status, format!("cannot roll back: {why}"));
            return None;
        }
    };
    ctx.actions
        .extend(targets.set_images(&target.desired, &rollback.note(&target.label)));
    let was_unobserved = rollback.rollout.unobserved_since.is_some();
    match rollout::judge(ctx, env, targets, &target, &mut rollback.rollout) {
        Rollout::Complete => {
            let after = status.unhealthy_since.as_ref().map_or_else(
                || elapsed(rollback.started_at, ctx.now),
                |t| elapsed(t.0, ctx.now),
            );
            status.phase = Some(EnvironmentPhase::Idle);
            status.healthy = Some(true);
            status.healthy_since = Some(ctx.now_time());
            status.unhealthy_since = None;
            let message = format!(
                "{} restored to {} after {}",
                env.name,
                target.label,
                format_duration(after)
            );
            status.message = Some(format!("runs {} (rolled back)", target.label));
            ctx.event(
                Regarding::Pipeline,
                EventType::Normal,
                "RollbackSucceeded",
                &env.name,
                message,
                Some(MetricEvent::Restored { after }),
            );
            None
        }
        Rollout::Failed(why) => {
            degrade(
                ctx,
                env,
                status,
                format!("the rollback to {} failed: {why}", target.label),
            );
            None
        }
        Rollout::Unobserved(waiting) => {
            status.message = Some(format!(
                "rolling {} back to {}: {waiting}",
                env.name, target.label
            ));
            Some(Promotion::Rollback(rollback))
        }
        Rollout::InProgress => {
            // Observed at last: the message says why it rolls back again.
            if was_unobserved {
                status.message = Some(message(
                    &env.name,
                    &target.label,
                    rollback.requested_by.as_deref(),
                    &rollback.reason,
                ));
            }
            Some(Promotion::Rollback(rollback))
        }
    }
}

/// What a rollback says while it rolls out.
fn message(environment: &str, label: &str, requested_by: Option<&str>, reason: &str) -> String {
    let by = requested_by
        .map(|who| format!(" (asked by {who})"))
        .unwrap_or_default();
    format!("rolling {environment} back to {label}{by}: {reason}")
}
