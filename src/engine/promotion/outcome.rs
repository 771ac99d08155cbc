//! How a promotion ends: the history entry, the failure mark, the Events and metrics; and
//! Degraded, when no automatic way forward is left.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    rollback::{Cause, start_rollback},
    state::{Deploy, Promotion, RollbackTrigger},
};
use crate::{
    api::{
        EnvironmentPhase, EnvironmentStatus, PromotionRecord, PromotionResult, ReleaseMark,
        ReleaseRef,
    },
    engine::{
        context::{Ctx, elapsed},
        decision::{EventType, MetricEvent, Regarding},
        targets::Targets,
    },
    validation::{ValidEnvironment, format_duration},
};

/// How a deploy ended, for its history entry and its two Events.
struct Ending {
    result: PromotionResult,
    reason: Option<String>,
    event: (EventType, &'static str),
    message: String,
    duration: Option<std::time::Duration>,
    lead_time: Option<std::time::Duration>,
    /// A second metric, carried by the Release's Event (an Event feeds one metric).
    also: Option<MetricEvent>,
}

/// Records how `deploy` ended: the newest history entry (the history keeps
/// `spec.historyLimit`), an Event on the Pipeline that feeds the metrics, and the same on
/// the Release.
fn finish(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    deploy: &Deploy,
    ending: Ending,
) {
    status.history.insert(
        0,
        PromotionRecord {
            release: deploy.release.clone(),
            version: deploy.version.clone(),
            result: ending.result,
            started_at: Some(Time(deploy.started_at)),
            finished_at: Some(ctx.now_time()),
            reason: ending.reason,
            requested_by: deploy.requested_by.clone(),
        },
    );
    status.history.truncate(ctx.pipeline.history_limit as usize);
    let metric = MetricEvent::PromotionFinished {
        result: ending.result.label(),
        duration: ending.duration,
        lead_time: ending.lead_time,
    };
    let (kind, reason) = ending.event;
    ctx.event(
        Regarding::Pipeline,
        kind,
        reason,
        &env.name,
        ending.message.clone(),
        Some(metric),
    );
    ctx.event(
        Regarding::Release(deploy.release.clone()),
        kind,
        reason,
        &env.name,
        ending.message,
        ending.also,
    );
}

/// The deploy was verified: the environment runs it, and it is the rollback target now.
pub(super) fn succeed(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    deploy: &Deploy,
) {
    let reference = ReleaseRef {
        release: deploy.release.clone(),
        version: deploy.version.clone(),
        since: Some(ctx.now_time()),
    };
    status.current = Some(reference.clone());
    status.last_good = Some(reference);
    status.phase = Some(EnvironmentPhase::Idle);
    status.healthy = Some(true);
    status.healthy_since = Some(ctx.now_time());
    status.unhealthy_since = None;
    status.message = Some(format!("runs {}, verified", deploy.version));
    let duration = elapsed(deploy.started_at, ctx.now);
    let created = ctx.releases.get(deploy.release.as_str()).map(|r| r.created);
    let ending = Ending {
        result: PromotionResult::Succeeded,
        reason: None,
        event: (EventType::Normal, "PromotionSucceeded"),
        message: format!(
            "{} is healthy in {} after {}",
            deploy.version,
            env.name,
            format_duration(duration)
        ),
        duration: Some(duration),
        lead_time: created.map(|c| elapsed(c, ctx.now)),
        also: None,
    };
    finish(ctx, env, status, deploy, ending);
}

/// Marks `release` failed here: it is never deployed here again unless a person retries.
fn mark_failed(ctx: &Ctx<'_>, status: &mut EnvironmentStatus, release: &str, reason: &str) {
    status.failed.retain(|m| m.release != release);
    status.failed.push(ReleaseMark {
        release: release.to_owned(),
        at: ctx.now_time(),
        reason: reason.to_owned(),
    });
}

/// A pre-deploy step failed: nothing changed in the cluster, so nothing to roll back.
pub(super) fn fail_before_change(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    deploy: &Deploy,
    reason: String,
) -> Option<Promotion> {
    mark_failed(ctx, status, &deploy.release, &reason);
    status.phase = Some(EnvironmentPhase::Idle);
    status.message = Some(format!(
        "{} failed before deploying: {reason}",
        deploy.version
    ));
    let ending = Ending {
        result: PromotionResult::Failed,
        event: (EventType::Warning, "PromotionFailed"),
        message: format!("{} failed in {}: {reason}", deploy.version, env.name),
        reason: Some(reason),
        duration: None,
        lead_time: None,
        also: None,
    };
    finish(ctx, env, status, deploy, ending);
    None
}

/// A canary step failed: the canaries go and the targets, never changed, keep serving the
/// release before. The release is Failed here until a person retries.
pub(super) fn canary_aborted(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    deploy: &Deploy,
    reason: String,
    step_duration: std::time::Duration,
) {
    mark_failed(ctx, status, &deploy.release, &reason);
    status.phase = Some(EnvironmentPhase::Idle);
    status.message = Some(format!(
        "{} was aborted in its canary: {reason}",
        deploy.version
    ));
    let ending = Ending {
        result: PromotionResult::RolledBack,
        event: (EventType::Warning, "CanaryAborted"),
        message: format!("{} was aborted in {}: {reason}", deploy.version, env.name),
        reason: Some(reason),
        duration: None,
        lead_time: None,
        also: Some(MetricEvent::CanaryStep {
            passed: false,
            duration: step_duration,
        }),
    };
    finish(ctx, env, status, deploy, ending);
}

/// The deployed release failed: mark it, then roll back (or hold, if automatic rollback is
/// off).
pub(super) fn verification_failed(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
    deploy: &Deploy,
    reason: String,
) -> Option<Promotion> {
    mark_failed(ctx, status, &deploy.release, &reason);
    let ending = Ending {
        result: if env.rollback.automatic {
            PromotionResult::RolledBack
        } else {
            PromotionResult::Failed
        },
        reason: Some(reason.clone()),
        event: (EventType::Warning, "VerificationFailed"),
        message: format!(
            "{} failed verification in {}: {reason}",
            deploy.version, env.name
        ),
        duration: None,
        lead_time: None,
        also: None,
    };
    finish(ctx, env, status, deploy, ending);
    if env.rollback.automatic {
        let to = status.last_good.as_ref().map(|r| r.release.clone());
        let cause = Cause {
            trigger: RollbackTrigger::Verification,
            failed_release: Some(deploy.release.clone()),
            reason,
            requested_by: None,
        };
        start_rollback(ctx, env, status, targets, to, cause)
    } else {
        let why = format!(
            "{} failed verification and automatic rollback is off, so it is held",
            deploy.version
        );
        degrade(ctx, env, status, why);
        None
    }
}

/// No automatic way forward: hold, say so, and wait for a person. Never loop. The caller
/// ends the promotion in flight, if any.
pub fn degrade(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    why: String,
) {
    status.phase = Some(EnvironmentPhase::Degraded);
    status.healthy = Some(false);
    let message = format!(
        "{} is Degraded: {why}; no promotion enters until a person rolls it back or retries",
        env.name
    );
    status.message = Some(message.clone());
    ctx.event(
        Regarding::Pipeline,
        EventType::Warning,
        "EnvironmentDegraded",
        &env.name,
        message,
        None,
    );
}
