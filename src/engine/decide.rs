//! One decision: every environment in upstream-first order, then the statuses people read.

use jiff::Timestamp;

use super::{
    canary,
    context::Ctx,
    decision::{Action, ChangeNote, CommitPurpose, Decision, EventType, MetricEvent, Regarding},
    explain,
    gate::Gate,
    gates::{self, Entry},
    promotion::{self, Cause, Promotion, RollbackTrigger},
    snapshot::{ReleaseView, Snapshot},
    targets::{Targets, short},
};
use crate::{
    api::{
        Decision as Verdict, EnvironmentPhase, EnvironmentStatus, OverrideRecord, PromotionResult,
    },
    validation::{ValidEnvironment, validate_pipeline},
};

/// Decides what to do now. Pure: the same snapshot always gives the same decision.
///
/// The decision is a fixpoint: deciding again from the status it returns, at the same
/// instant, changes nothing. So a controller that crashes after writing the status and
/// decides again makes exactly the decision it would have made anyway.
pub fn decide(snap: &Snapshot) -> Decision {
    let (valid, problems) = validate_pipeline(&snap.pipeline.spec);
    match valid {
        Some(pipeline) => decide_with(snap, &pipeline),
        None => explain::invalid_spec(snap, &problems),
    }
}

/// [`decide`] with the spec already checked: a controller checks each Pipeline generation
/// once and reuses the result, since parsing cron expressions, time zones and globs costs
/// more than the decision itself. `pipeline` must be `snap.pipeline.spec`, validated.
pub fn decide_with(snap: &Snapshot, pipeline: &crate::validation::ValidPipeline) -> Decision {
    let mut decision = decide_from(snap, pipeline, &snap.pipeline.status);
    if decision.pipeline_status == snap.pipeline.status {
        // Nothing changed: the input already was the fixpoint.
        return decision;
    }
    // Deciding again from the new status lets each environment see what the others just
    // became (a downstream, its upstream verified at this instant). A pass that changes
    // the status took at least one step of some environment's promotion, and at one
    // instant an environment can take at most one step per stage: its pre-deploy Jobs,
    // its canary steps, the rollout, verification, the end, a rollback. So this many
    // passes settle; more would mean statuses that cycle, and then the last decision
    // stands (every action is idempotent) until the next event decides again.
    let steps: usize = pipeline
        .environments
        .iter()
        .map(|env| env.pre_deploy.len() + env.rollout.as_ref().map_or(0, |r| r.steps.len()) + 4)
        .sum();
    for _ in 0..steps {
        let again = decide_from(snap, pipeline, &decision.pipeline_status);
        let settled = again.pipeline_status == decision.pipeline_status;
        decision = merge(decision, again, settled);
        if settled {
            break;
        }
    }
    decision
}

/// Combines a decision with the one made from its own status: the later statuses, probes
/// and wake-up; the actions of both (each is idempotent); the transitions of both, except
/// that a settled re-decision adds no Events (it saw no transition).
fn merge(first: Decision, again: Decision, settled: bool) -> Decision {
    let mut actions = first.actions;
    for action in again.actions {
        let same_target = |a: &Action| match (a, &action) {
            (Action::SetImages { workload: w1, .. }, Action::SetImages { workload: w2, .. }) => {
                w1 == w2
            }
            (
                Action::SetCanary { stable: s1, .. } | Action::DeleteCanary { stable: s1, .. },
                Action::SetCanary { stable: s2, .. } | Action::DeleteCanary { stable: s2, .. },
            ) => s1 == s2,
            (
                Action::SetRouteWeights { route: r1, .. },
                Action::SetRouteWeights { route: r2, .. },
            ) => r1 == r2,
            _ => *a == action,
        };
        actions.retain(|a| !same_target(a));
        actions.push(action);
    }
    let mut events = first.events;
    if !settled {
        events.extend(again.events);
    }
    Decision {
        actions,
        events,
        ..again
    }
}

fn decide_from(
    snap: &Snapshot,
    pipeline: &crate::validation::ValidPipeline,
    previous: &crate::api::PipelineStatus,
) -> Decision {
    let mut ctx = Ctx::new(snap, pipeline);
    let mut envs: Vec<EnvironmentStatus> = pipeline
        .environments
        .iter()
        .map(|e| {
            previous
                .environments
                .iter()
                .find(|s| s.name == e.name)
                .cloned()
                .unwrap_or_else(|| EnvironmentStatus {
                    name: e.name.clone(),
                    ..Default::default()
                })
        })
        .collect();
    let mut overrides = previous.overrides.clone();
    for &i in &pipeline.topological_order {
        let upstream: Vec<UpstreamView> = pipeline.environments[i]
            .upstream
            .iter()
            .map(|&u| UpstreamView::of(&pipeline.environments[u], &envs[u]))
            .collect();
        step_environment(
            &mut ctx,
            &pipeline.environments[i],
            &mut envs[i],
            &upstream,
            &mut overrides,
        );
    }
    overrides.truncate(pipeline.history_limit as usize);
    let status = explain::pipeline_status(&ctx, previous, envs, overrides);
    explain::finish(ctx, status)
}

/// What a downstream environment needs to know of an upstream one.
struct UpstreamView {
    name: String,
    healthy_release: Option<String>,
    healthy_since: Option<Timestamp>,
}

impl UpstreamView {
    fn of(env: &ValidEnvironment, status: &EnvironmentStatus) -> Self {
        // Only a verified release that is healthy now, with nothing in flight, is a candidate downstream.
        let verified = status.verified_current();
        let healthy = status.promotion.is_none()
            && status.healthy == Some(true)
            && status.healthy_since.is_some();
        Self {
            name: env.name.clone(),
            healthy_release: verified.filter(|_| healthy).map(|c| c.release.clone()),
            healthy_since: status.healthy_since.as_ref().map(|t| t.0),
        }
    }
}

/// One environment's turn: its promotion in flight is read from the status, advanced,
/// perhaps replaced, and written back.
fn step_environment(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    upstream: &[UpstreamView],
    overrides: &mut Vec<crate::api::OverrideRecord>,
) {
    let mut flight = match status.promotion.as_ref().map(Promotion::read).transpose() {
        Ok(flight) => flight,
        Err(why) => {
            let why = format!("its promotion in status cannot be read: {why}");
            promotion::degrade(ctx, env, status, why);
            None
        }
    };
    step_with(ctx, env, status, &mut flight, upstream, overrides);
    status.promotion = flight.as_ref().map(|p| p.to_status_in(env));
    for record in ctx.overrides.drain(..) {
        overrides.insert(0, record);
    }
}

fn step_with(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    flight: &mut Option<Promotion>,
    upstream: &[UpstreamView],
    overrides: &mut Vec<crate::api::OverrideRecord>,
) {
    prune(ctx, status);
    let resolved = Targets::resolve(env, ctx.snap);
    let targets = match resolved {
        Ok(targets) => targets,
        Err(why) => {
            status.message = Some(format!("waiting: {why}"));
            candidates(
                ctx,
                env,
                status,
                flight,
                upstream,
                Some((Gate::Target, why)),
            );
            return;
        }
    };
    if flight.is_none() {
        track_baseline(ctx, env, status, &targets);
    }
    apply_retries(ctx, env, status, overrides);
    if let Some(why) = hold_for_git_change(ctx, env, status, &targets) {
        status.message = Some(why.clone());
        candidates(
            ctx,
            env,
            status,
            flight,
            upstream,
            Some((Gate::ChangedInGit, why)),
        );
        return;
    }
    promotion::advance(ctx, env, status, flight, &targets);
    if !flight.as_ref().is_some_and(Promotion::in_canary) {
        // No canary step in flight: a canary still there is garbage (an abort, a finished
        // or abandoned step, a crash in between). Its traffic goes first; it goes once
        // the route is seen without it.
        match canary::withdraw_traffic(&ctx.snap.routes, env) {
            Some(withdraw) => ctx.actions.push(withdraw),
            None => {
                let stale = canary::delete_canaries(&ctx.snap.workloads, &targets, env);
                ctx.actions.extend(stale);
            }
        }
    }
    if flight.is_none() {
        apply_rollback_override(ctx, env, status, flight, &targets, overrides);
    }
    if flight.is_none() && status.phase != Some(EnvironmentPhase::Degraded) {
        watch_health(ctx, env, status, flight, &targets);
    }
    if flight.is_none() && status.phase != Some(EnvironmentPhase::Degraded) {
        repair_drift(ctx, env, status, &targets);
    }
    if let Some(pin) = &env.pin
        && flight.is_none()
        && status.phase != Some(EnvironmentPhase::Degraded)
        && !ctx.pipeline.suspend
    {
        follow_pin(ctx, env, status, flight, &targets, pin);
    }
    let blocker = if status.phase == Some(EnvironmentPhase::Degraded) {
        Some((
            Gate::Environment,
            format!(
                "{} is Degraded; no promotion enters until a person acts",
                env.name
            ),
        ))
    } else if let Some(p) = flight.as_ref() {
        Some((
            Gate::Environment,
            format!("{} is busy {}", env.name, p.doing()),
        ))
    } else if ctx.pipeline.suspend {
        Some((
            Gate::Suspended,
            "the pipeline is suspended (spec.suspend)".to_owned(),
        ))
    } else {
        env.pin.as_ref().map(|pin| {
            let why = format!(
                "{} is pinned to {} (spec pin: {}); remove the pin to promote again",
                env.name, pin.release, pin.reason
            );
            (Gate::Pinned, why)
        })
    };
    if let Some((started, promoted_now_by)) =
        candidates(ctx, env, status, flight, upstream, blocker)
        && let Some(release) = ctx.releases.get(started.as_str()).copied()
    {
        // Record the override only now that it took effect.
        if let Some(by) = &promoted_now_by {
            overrides.insert(
                0,
                OverrideRecord {
                    approval: ctx
                        .approvals_of(Verdict::PromoteNow, &release.name, &env.name)
                        .first()
                        .map(|a| a.name.clone())
                        .unwrap_or_default(),
                    decision: Verdict::PromoteNow,
                    release: release.name.clone(),
                    environment: env.name.clone(),
                    requested_by: by.clone(),
                    at: ctx.now_time(),
                },
            );
        }
        promotion::advance(ctx, env, status, flight, &targets);
    }
}

/// A pinned environment moves to its pinned release, through the usual deploy,
/// verification and rollback but not the gates (the review of the pin is the approval),
/// unless it runs it already, the release failed here, or it does not exist.
fn follow_pin(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    flight: &mut Option<Promotion>,
    targets: &Targets<'_>,
    pin: &crate::api::Pin,
) {
    if status
        .current
        .as_ref()
        .is_some_and(|c| c.release == pin.release)
    {
        return;
    }
    let Some(release) = ctx.releases.get(pin.release.as_str()).copied() else {
        status.message = Some(format!(
            "pinned to {}, which does not exist: {} holds until it does or the pin goes",
            pin.release, env.name
        ));
        return;
    };
    if let Some(mark) = status.failed.iter().find(|m| m.release == pin.release) {
        status.message = Some(format!(
            "pinned to {} ({}), which failed here ({}): {} holds until a person retries it or the pin changes",
            release.spec.version, release.name, mark.reason, env.name
        ));
        return;
    }
    let message = format!(
        "{} moves to {} ({}), to which it is pinned: {}",
        env.name, release.spec.version, release.name, pin.reason
    );
    ctx.event(
        Regarding::Release(release.name.clone()),
        EventType::Normal,
        "Pinned",
        &env.name,
        message,
        None,
    );
    *flight = Some(promotion::start_deploy(
        ctx,
        env,
        status,
        release,
        None,
        &[],
    ));
    promotion::advance(ctx, env, status, flight, targets);
}

/// Forgets marks and test results of Releases that no longer exist.
fn prune(ctx: &Ctx<'_>, status: &mut EnvironmentStatus) {
    status
        .failed
        .retain(|m| ctx.releases.contains_key(m.release.as_str()));
    status
        .gate_tests
        .retain(|r| ctx.releases.contains_key(r.release.as_str()));
}

/// Until Greenlight first deploys here, the baseline follows what runs (the caller asks
/// only while nothing is in flight).
fn track_baseline(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
) {
    let never_deployed =
        status.current.is_none() && status.last_good.is_none() && status.history.is_empty();
    if !never_deployed {
        return;
    }
    let observed = targets.observed_images();
    if status.baseline != observed {
        let first = status.baseline.is_empty();
        status.baseline = observed;
        if first {
            let message = format!(
                "recorded the baseline of {}: the images of its {} containers, its rollback target until a release is verified",
                env.name,
                status.baseline.len()
            );
            ctx.event(
                Regarding::Pipeline,
                EventType::Normal,
                "BaselineRecorded",
                &env.name,
                message,
                None,
            );
        }
    }
    if status.phase.is_none() {
        status.phase = Some(EnvironmentPhase::Idle);
    }
}

/// A Retry clears a release's failure here (if it came after the failure).
fn apply_retries(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    overrides: &mut Vec<OverrideRecord>,
) {
    let marks = status.failed.clone();
    for mark in marks {
        let retry = ctx
            .approvals_of(Verdict::Retry, &mark.release, &env.name)
            .into_iter()
            .rev()
            .find(|a| a.created > mark.at.0);
        let Some(retry) = retry else { continue };
        status.failed.retain(|m| m.release != mark.release);
        let holds_it = status
            .current
            .as_ref()
            .is_some_and(|c| c.release == mark.release);
        if status.phase == Some(EnvironmentPhase::Degraded) && holds_it {
            status.phase = Some(EnvironmentPhase::Idle);
        }
        overrides.insert(
            0,
            OverrideRecord {
                approval: retry.name.clone(),
                decision: Verdict::Retry,
                release: mark.release.clone(),
                environment: env.name.clone(),
                requested_by: retry.spec.approver.clone(),
                at: ctx.now_time(),
            },
        );
        let message = format!(
            "{} asked to retry {} in {}",
            retry.spec.approver,
            ctx.version_of(&mark.release),
            env.name
        );
        ctx.event(
            Regarding::Release(mark.release.clone()),
            EventType::Normal,
            "RetryRequested",
            &env.name,
            message,
            None,
        );
    }
}

/// A person's Rollback to a release that ran here, asked after the last change.
fn apply_rollback_override(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    flight: &mut Option<Promotion>,
    targets: &Targets<'_>,
    overrides: &mut Vec<OverrideRecord>,
) {
    let last_change = status.last_change();
    let mut pending: Vec<&crate::engine::ApprovalView> = ctx
        .snap
        .approvals
        .iter()
        .filter(|a| a.spec.decision == Verdict::Rollback && a.spec.environment == env.name)
        .filter(|a| last_change.is_none_or(|t| a.created > t))
        .collect();
    pending.sort_by_key(|a| a.created);
    let Some(request) = pending.last() else {
        return;
    };
    let to = request.spec.release.clone();
    let ran_here = status
        .verified_releases()
        .iter()
        .any(|(release, _)| *release == to);
    if !ran_here || !ctx.releases.contains_key(to.as_str()) {
        status.message = Some(format!(
            "ignored the rollback to {to} asked by {}: it never ran verified here",
            request.spec.approver
        ));
        return;
    }
    if status.current.as_ref().is_some_and(|c| c.release == to)
        && status.phase != Some(EnvironmentPhase::Degraded)
    {
        return;
    }
    let leaving = status.current.as_ref().map(|c| c.release.clone());
    let who = request.spec.approver.clone();
    if let Some(leaving) = &leaving {
        // Without this mark, the release just rolled away from would be promoted again at once.
        if *leaving != to {
            status.failed.retain(|m| m.release != *leaving);
            status.failed.push(crate::api::ReleaseMark {
                release: leaving.clone(),
                at: ctx.now_time(),
                reason: format!("rolled back by {who}"),
            });
        }
    }
    overrides.insert(
        0,
        OverrideRecord {
            approval: request.name.clone(),
            decision: Verdict::Rollback,
            release: to.clone(),
            environment: env.name.clone(),
            requested_by: who.clone(),
            at: ctx.now_time(),
        },
    );
    let cause = Cause {
        trigger: RollbackTrigger::Manual,
        failed_release: leaving,
        reason: format!("asked by {who}"),
        requested_by: Some(who),
    };
    *flight = promotion::start_rollback(ctx, env, status, targets, Some(to), cause);
}

/// Keep watching after verification: availability and the verify probes.
fn watch_health(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    flight: &mut Option<Promotion>,
    targets: &Targets<'_>,
) {
    let probes = promotion::verify_probes(ctx, env);
    // Results from before the environment last changed (a deploy, a rollback) say nothing
    // about what runs now; nor do those that ended a promotion (an aborted canary's pods
    // answered them too): those came by the second it ended, which is all the status
    // keeps, so only results from the next second on count.
    let ended = status
        .history
        .first()
        .and_then(|h| h.finished_at.as_ref())
        .map(|t| Ctx::after(t.0, std::time::Duration::from_secs(1)));
    let since = [
        status.healthy_since.as_ref().map(|t| t.0),
        status.unhealthy_since.as_ref().map(|t| t.0),
        status
            .current
            .as_ref()
            .and_then(|c| c.since.as_ref())
            .map(|t| t.0),
        ended,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(Timestamp::MIN);
    let problem = if !targets.available() {
        Some("not every replica of the target workloads is available".to_owned())
    } else {
        promotion::probes_hold(ctx, &probes, since).err()
    };
    match problem {
        None => {
            if status.healthy != Some(true) {
                if let Some(since) = status.unhealthy_since.take() {
                    let after = super::context::elapsed(since.0, ctx.now);
                    let message = format!("{} is healthy again", env.name);
                    ctx.event(
                        Regarding::Pipeline,
                        EventType::Normal,
                        "EnvironmentRecovered",
                        &env.name,
                        message,
                        Some(MetricEvent::Restored { after }),
                    );
                }
                status.healthy = Some(true);
                // Only a verified release soaks; the baseline has nothing to promote.
                if status.current.is_some() && status.healthy_since.is_none() {
                    status.healthy_since = Some(ctx.now_time());
                }
            }
        }
        Some(why) => {
            if status.healthy != Some(false) {
                status.healthy = Some(false);
                status.healthy_since = None;
                status.unhealthy_since = Some(ctx.now_time());
                let message = format!("{} turned unhealthy: {why}", env.name);
                status.message = Some(message.clone());
                ctx.event(
                    Regarding::Pipeline,
                    EventType::Warning,
                    "EnvironmentUnhealthy",
                    &env.name,
                    message,
                    None,
                );
            }
            let verified = status.verified_current().map(|c| c.release.clone());
            if env.rollback.after_verification
                && let Some(bad) = verified
            {
                let previous = status
                    .history
                    .iter()
                    .find(|h| {
                        // Never back to a release that failed here: that would loop.
                        h.result == PromotionResult::Succeeded
                            && h.release != bad
                            && !status.failed.iter().any(|m| m.release == h.release)
                            && ctx.releases.contains_key(h.release.as_str())
                    })
                    .map(|h| h.release.clone());
                status.failed.retain(|m| m.release != bad);
                status.failed.push(crate::api::ReleaseMark {
                    release: bad.clone(),
                    at: ctx.now_time(),
                    reason: why.clone(),
                });
                status.last_good = previous
                    .as_ref()
                    .and_then(|p| status.history.iter().find(|h| &h.release == p))
                    .map(|h| crate::api::ReleaseRef {
                        release: h.release.clone(),
                        version: h.version.clone(),
                        since: h.finished_at.clone(),
                    });
                let cause = Cause {
                    trigger: RollbackTrigger::Unhealthy,
                    failed_release: Some(bad),
                    reason: why,
                    requested_by: None,
                };
                *flight = promotion::start_rollback(ctx, env, status, targets, previous, cause);
            }
        }
    }
}

/// No promotion in flight and the images differ from what should run: restore them.
fn repair_drift(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
) {
    let desired = match &status.current {
        Some(current) => match ctx.releases.get(current.release.as_str()) {
            Some(release) => targets.release_images(release).ok(),
            None => None,
        },
        None if !status.history.is_empty() => Some(status.baseline.clone()),
        None => None,
    };
    let Some(desired) = desired else { return };
    let restore = ChangeNote {
        purpose: CommitPurpose::Restore,
        release: status.current.as_ref().map(|c| c.release.clone()),
        version: status
            .current
            .as_ref()
            .map_or_else(|| "the baseline images".to_owned(), |c| c.version.clone()),
        details: vec![format!("{} no longer declared what it runs", env.name)],
    };
    let actions = targets.set_images(&desired, &restore);
    let window_start = ctx.now - jiff::SignedDuration::from_secs(FIGHT_WINDOW.as_secs() as i64);
    status.drift_repairs.retain(|t| t.0 > window_start);
    if actions.is_empty() {
        if let Some(fight) = status.drift_fight.take() {
            let message = format!(
                "{} runs its images again: drift repair resumes (stopped since {})",
                env.name, fight.since.0
            );
            ctx.event(
                Regarding::Pipeline,
                EventType::Normal,
                "DriftFightEnded",
                &env.name,
                message,
                None,
            );
        }
        return;
    }
    let drifted = targets.drifted(&desired);
    // One drift counts once: the passes of one decision, and the decisions until the
    // repair is seen, see the same drift again.
    let counted_recently = status
        .drift_repairs
        .last()
        .is_some_and(|t| Ctx::after(t.0, FIGHT_DEBOUNCE) > ctx.now);
    if let Some(fight) = &status.drift_fight {
        // A person's Retry of the current release, asked after the fight began, resumes.
        let retried = status
            .current
            .as_ref()
            .and_then(|c| ctx.override_after(Verdict::Retry, &c.release, &env.name, fight.since.0));
        let Some(retry) = retried else {
            status.message = Some(fight_message(env, fight));
            return;
        };
        ctx.record_override(retry);
        status.drift_fight = None;
        status.drift_repairs.clear();
    } else if !counted_recently && status.drift_repairs.len() >= FIGHT_REPAIRS {
        let managers = targets.image_managers();
        let fight = crate::api::DriftFight {
            since: ctx.now_time(),
            managers,
            drifted,
        };
        let message = fight_message(env, &fight);
        ctx.event(
            Regarding::Pipeline,
            EventType::Warning,
            "DriftFight",
            &env.name,
            message.clone(),
            Some(MetricEvent::DriftFight),
        );
        status.message = Some(message);
        status.drift_fight = Some(fight);
        return;
    }
    let message = format!(
        "restored drifted images in {}: {}",
        env.name,
        drifted.join(", ")
    );
    ctx.event(
        Regarding::Pipeline,
        EventType::Warning,
        "DriftRepaired",
        &env.name,
        message,
        Some(MetricEvent::DriftRepaired),
    );
    if !counted_recently {
        status.drift_repairs.push(ctx.now_time());
    }
    ctx.actions.extend(actions);
}

/// GitOps mode: a person's commit that changed the images after Greenlight's last commit
/// holds the environment (nothing in flight advances, no promotion starts, nothing is
/// committed over it) until the branch is back on what Greenlight wrote, or a person asks
/// for a retry of the current release, which commits it again. The hold's message, while
/// it holds.
fn hold_for_git_change(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &Targets<'_>,
) -> Option<String> {
    let Some(change) = targets.changed_in_git() else {
        if let Some(hold) = status.git_change.take() {
            let message = format!(
                "{} is back on what Greenlight committed; promotion resumes (held since {} by commit {})",
                env.name,
                hold.since.0,
                short(&hold.commit)
            );
            ctx.event(
                Regarding::Pipeline,
                EventType::Normal,
                "ChangedInGitResolved",
                &env.name,
                message,
                None,
            );
        }
        return None;
    };
    if status
        .git_change
        .as_ref()
        .is_none_or(|hold| hold.commit != change.commit)
    {
        let hold = crate::api::GitChangeHold {
            commit: change.commit.clone(),
            author: change.author.clone(),
            summary: change.summary.clone(),
            since: ctx.now_time(),
            retried_by: None,
        };
        ctx.event(
            Regarding::Pipeline,
            EventType::Warning,
            "ChangedInGit",
            &env.name,
            git_change_message(env, &hold),
            None,
        );
        status.git_change = Some(hold);
    }
    let since = match &status.git_change {
        Some(hold) if hold.retried_by.is_none() => hold.since.0,
        _ => return None,
    };
    // A person's Retry of the current release, asked after the change was seen, commits
    // it again over the change.
    let retried = status
        .current
        .as_ref()
        .and_then(|c| ctx.override_after(Verdict::Retry, &c.release, &env.name, since));
    let hold = status.git_change.as_mut()?;
    if let Some(retry) = retried {
        hold.retried_by = Some(retry.spec.approver.clone());
        ctx.record_override(retry);
        return None;
    }
    Some(git_change_message(env, hold))
}

/// What a hold for a person's commit says, in the status and its Event.
fn git_change_message(env: &ValidEnvironment, hold: &crate::api::GitChangeHold) -> String {
    format!(
        "{} is held: commit {} by {} changed its images in Git ({:?}); Greenlight does not overwrite it. \
         Revert it to resume, or ask for a retry of the current release to commit it again",
        env.name,
        short(&hold.commit),
        hold.author,
        hold.summary
    )
}

/// Drift repaired this many times within [`FIGHT_WINDOW`], and drifted once more: another
/// field manager is setting the images back, and repairing again would only flap.
const FIGHT_REPAIRS: usize = 3;
/// See [`FIGHT_REPAIRS`].
const FIGHT_WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// Drift seen again within this time of a counted repair is the same drift (the repair
/// not yet seen), not another one.
const FIGHT_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(30);

/// What a fight over the images says, in the status and its Event.
fn fight_message(env: &ValidEnvironment, fight: &crate::api::DriftFight) -> String {
    let who = if fight.managers.is_empty() {
        "another field manager".to_owned()
    } else {
        format!("field manager {}", fight.managers.join(", "))
    };
    format!(
        "not repairing drift in {}: {who} set the images back {FIGHT_REPAIRS} times within {}m ({}); \
         let it leave the images to Greenlight (docs/gitops.md), or ask for a retry of the current release",
        env.name,
        FIGHT_WINDOW.as_secs() / 60,
        fight.drifted.join(", ")
    )
}

/// Finds the candidates for `env`, explains why each waits, and starts the newest one
/// whose gates all pass (unless `blocker` holds the environment). Returns the release
/// started and who asked to promote it now, if anyone.
fn candidates(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    flight: &mut Option<Promotion>,
    upstream: &[UpstreamView],
    blocker: Option<(Gate, String)>,
) -> Option<(String, Option<String>)> {
    let current_created = status
        .current
        .as_ref()
        .and_then(|c| ctx.releases.get(c.release.as_str()))
        .map(|r| (r.created, r.name.clone()));
    let in_flight = flight.as_ref().and_then(|p| p.release()).map(str::to_owned);
    // Never move to an older release than the one running, except by rollback. This
    // cheap test comes first: in a long-lived pipeline most releases are older.
    let newer_than_current = |release: &ReleaseView| match &current_created {
        Some((created, name)) => {
            (release.created, release.name.as_str()) > (*created, name.as_str())
        }
        None => true,
    };
    let mut found: Vec<(&ReleaseView, Entry)> = ctx
        .releases
        .values()
        .filter(|release| newer_than_current(release))
        .filter_map(|release| {
            let direct = env.accepts_ref(&release.spec.source.git_ref);
            let via_upstream = !upstream.is_empty()
                && upstream
                    .iter()
                    .all(|u| u.healthy_release.as_deref() == Some(release.name.as_str()));
            match (direct, via_upstream) {
                (true, _) => Some((*release, Entry::Direct)),
                (false, true) => Some((*release, Entry::Upstream)),
                _ => None,
            }
        })
        .filter(|(release, _)| {
            Some(release.name.as_str()) != status.current.as_ref().map(|c| c.release.as_str())
        })
        .filter(|(release, _)| Some(&release.name) != in_flight.as_ref())
        .filter(|(release, _)| !status.failed.iter().any(|m| m.release == release.name))
        .filter(|(release, _)| {
            ctx.approvals_of(Verdict::Reject, &release.name, &env.name)
                .is_empty()
        })
        .collect();
    found.sort_by(|a, b| (b.0.created, &b.0.name).cmp(&(a.0.created, &a.0.name)));

    let upstream_since: Vec<(String, Option<Timestamp>)> = upstream
        .iter()
        .map(|u| (u.name.clone(), u.healthy_since))
        .collect();
    let newest_waiting = found.first().map(|(release, _)| *release);
    let may_start = blocker.is_none();
    let mut tests_slot_taken = false;
    let mut started: Option<(String, Option<String>, Timestamp)> = None;
    for (release, entry) in found {
        if let Some((newer, _, created)) = &started
            && release.created <= *created
        {
            ctx.supersede(&env.name, &release.name, newer);
            let message = format!(
                "{} was superseded in {} by {}",
                release.spec.version,
                env.name,
                ctx.version_of(newer)
            );
            let metric = MetricEvent::PromotionFinished {
                result: PromotionResult::Superseded.label(),
                duration: None,
                lead_time: None,
            };
            ctx.event(
                Regarding::Release(release.name.clone()),
                EventType::Normal,
                "Superseded",
                &env.name,
                message,
                Some(metric),
            );
            continue;
        }
        let mut verdict = gates::evaluate(
            ctx,
            env,
            status,
            release,
            entry,
            &upstream_since,
            may_start && !tests_slot_taken,
        );
        tests_slot_taken |= verdict.tests_running;
        if let Some((gate, why)) = &blocker {
            verdict.blocking.insert(
                0,
                crate::api::BlockingGate {
                    gate: gate.label().to_owned(),
                    reason: why.clone(),
                    next_open: None,
                },
            );
        }
        if verdict.passes() && started.is_none() {
            *flight = Some(promotion::start_deploy(
                ctx,
                env,
                status,
                release,
                verdict.promote_now_by.clone(),
                &verdict.passed,
            ));
            started = Some((
                release.name.clone(),
                verdict.promote_now_by.clone(),
                release.created,
            ));
        } else {
            ctx.wait(&env.name, &release.name, verdict.blocking);
        }
    }
    status.next = newest_waiting.and_then(|release| {
        let blocking = ctx.waiting_for(&release.name, &env.name)?.first()?;
        let until = blocking
            .next_open
            .as_ref()
            .map(|t| format!(" (opens {})", t.0))
            .unwrap_or_default();
        Some(format!(
            "{} waits for {}{until}: {}",
            release.spec.version, blocking.gate, blocking.reason
        ))
    });
    // Test results matter only while their release is still a candidate here.
    status
        .gate_tests
        .retain(|r| ctx.is_waiting(&r.release, &env.name));
    started.map(|(name, by, _)| (name, by))
}
