//! Judging a rollout on what the workload controllers have observed.

use jiff::Timestamp;

use super::{Target, state::RollingOut};
use crate::{
    engine::{
        context::{Ctx, truncate},
        targets::Targets,
    },
    validation::{ValidEnvironment, format_duration},
};

/// Where a rollout stands, judged on what the workload controllers have seen.
#[derive(Debug, PartialEq)]
pub(super) enum Rollout {
    /// Every target rolled out.
    Complete,
    /// It cannot complete: a workload controller gave up, or the progress deadline
    /// (counted from when the new spec was observed) passed.
    Failed(String),
    /// A workload controller has not observed the new spec yet: its status says nothing
    /// of the new pods, and the progress deadline has not started. Says what it waits for.
    Unobserved(String),
    /// Observed and progressing, within the deadline.
    InProgress,
}

/// Judges the rollout of `target` and keeps `rolling`'s `observed_at` / `unobserved_since`
/// up to date. A control plane that lags behind (a Deployment controller minutes behind
/// at its default QPS) only makes the rollout wait, visibly; the deadline counts from the
/// moment the new spec was observed.
pub(super) fn judge(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    targets: &Targets<'_>,
    target: &Target,
    rolling: &mut RollingOut,
) -> Rollout {
    let deadline = env.verify.progress_deadline;
    // Until the store shows our images, the change is in flight: the deadline counts from
    // the stage's start as before, so an image someone keeps reverting still fails.
    let ours = targets.images_match(&target.desired);
    let unobserved = if ours { targets.unobserved() } else { None };
    if ours && unobserved.is_none() {
        // Seen lagging before: observed now (the Deployment watch brings the change at
        // once). Never seen lagging: observed from the start, as far as anyone can tell.
        let observed_at = match (rolling.observed_at, rolling.unobserved_since) {
            (Some(at), _) => at,
            (None, Some(_)) => ctx.now,
            (None, None) => rolling.since,
        };
        rolling.observed_at = Some(observed_at);
        rolling.unobserved_since = None;
        if targets.rolled_out() {
            return Rollout::Complete;
        }
        if let Some(reason) = targets.stuck() {
            return Rollout::Failed(reason);
        }
        let counted_from = targets.observer();
        return match until_deadline(ctx, observed_at, deadline, &counted_from) {
            // Pods that change only when deleted: the failure says why it did not complete.
            Rollout::Failed(reason) => match targets.notes() {
                Some(note) => Rollout::Failed(format!("{reason} ({note})")),
                None => Rollout::Failed(reason),
            },
            waiting => waiting,
        };
    }
    if let Some(lagging) = unobserved {
        let since = rolling.unobserved_since.unwrap_or(ctx.now);
        rolling.unobserved_since = Some(since);
        // Past the deadline the Pipeline says the control plane lags; wake to say it.
        ctx.wake_at(Ctx::after(since, deadline));
        return Rollout::Unobserved(format!(
            "waiting for {lagging} since {}; the progress deadline starts once it has",
            truncate(since),
        ));
    }
    until_deadline(ctx, rolling.since, deadline, "")
}

/// In progress until `start` plus `deadline` (the engine wakes then), failed after, with a
/// reason that says what the deadline counts from.
fn until_deadline(
    ctx: &mut Ctx<'_>,
    start: Timestamp,
    deadline: std::time::Duration,
    counted_from: &str,
) -> Rollout {
    let ends = Ctx::after(start, deadline);
    if ctx.now >= ends {
        return Rollout::Failed(format!(
            "the rollout did not complete within {}{counted_from}",
            format_duration(deadline)
        ));
    }
    ctx.wake_at(ends);
    Rollout::InProgress
}
