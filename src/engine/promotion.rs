//! The promotion state machine of one environment: pre-deploy Jobs, rollout, verification,
//! success; or failure, rollback to the last good release, and Degraded if that fails too.
//!
//! Every step re-derives its actions from the status, so a decision repeated after a crash
//! asks for the same images and the same Jobs again, and nothing happens twice.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    context::{Ctx, elapsed, truncate},
    decision::{Action, EventType, MetricEvent, ProbeRequest, ProbeTarget, Regarding},
    gates::attempt,
    jobs::{JobKey, JobPurpose},
    snapshot::{JobOutcome, ProbeId, ProbeKind, ProbePurpose, ReleaseView},
    targets::{self, Desired, Resolved},
};
use crate::{
    api::{
        EnvironmentPhase, EnvironmentStatus, PromotionKind, PromotionRecord, PromotionResult,
        PromotionStage, PromotionState, ReleaseMark, ReleaseRef,
    },
    validation::{ValidEnvironment, ValidJob, format_duration},
};

/// Starts deploying `release` into the environment.
pub fn start_deploy(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    release: &ReleaseView,
    requested_by: Option<String>,
    gates_passed: &[&'static str],
) {
    // Every deploy starts with the pre-deploy stage (perhaps empty), so that the switch to
    // the rollout always goes through one place.
    let stage = PromotionStage::PreDeploy;
    status.promotion = Some(PromotionState {
        kind: PromotionKind::Deploy,
        release: Some(release.name.clone()),
        version: Some(release.spec.version.clone()),
        stage,
        step: 0,
        started_at: ctx.now_time(),
        stage_started_at: ctx.now_time(),
        rollout_observed_at: None,
        unobserved_since: None,
        attempt: attempt(ctx, &release.name, &env.name),
        requested_by: requested_by.clone(),
        failed_release: None,
        trigger: None,
        reason: None,
    });
    status.phase = Some(EnvironmentPhase::Deploying);
    let passed = if gates_passed.is_empty() {
        "no gates".to_owned()
    } else {
        format!("gates passed: {}", gates_passed.join(", "))
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
        Some(MetricEvent::GatesPassed {
            gates: gates_passed.to_vec(),
        }),
    );
    ctx.event(
        Regarding::Release(release.name.clone()),
        EventType::Normal,
        "PromotionStarted",
        &env.name,
        message,
        None,
    );
}

/// What a promotion targets: a release's images, or the baseline.
struct Target {
    desired: Desired,
    label: String,
}

fn target_of(
    ctx: &Ctx<'_>,
    status: &EnvironmentStatus,
    targets: &[Resolved<'_>],
    release: Option<&str>,
) -> Result<Target, String> {
    match release {
        Some(name) => {
            let release = ctx
                .releases
                .get(name)
                .ok_or_else(|| format!("release {name} no longer exists"))?;
            Ok(Target {
                desired: targets::release_images(targets, release)?,
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

/// Advances the promotion in flight by as many steps as the observations allow.
pub fn advance(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
) {
    // A few steps can complete in one decision (say, rollout done and a zero window).
    for _ in 0..4 {
        let Some(promotion) = status.promotion.clone() else {
            return;
        };
        let before = status.promotion.clone();
        match promotion.kind {
            PromotionKind::Deploy => advance_deploy(ctx, env, status, targets, &promotion),
            PromotionKind::Rollback => advance_rollback(ctx, env, status, targets, &promotion),
        }
        if status.promotion == before {
            return;
        }
    }
}

fn advance_deploy(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
    p: &PromotionState,
) {
    let release_name = p.release.clone().unwrap_or_default();
    let target = match target_of(ctx, status, targets, p.release.as_deref()) {
        Ok(target) => target,
        Err(reason) if p.stage == PromotionStage::PreDeploy => {
            return fail_before_change(ctx, env, status, p, reason);
        }
        Err(reason) => return verification_failed(ctx, env, status, targets, p, reason),
    };
    let stage_started = p.stage_started_at.0;
    match p.stage {
        PromotionStage::PreDeploy => {
            let Some(step) = env.pre_deploy.get(p.step as usize) else {
                return begin_rollout(ctx, env, status, targets, &target);
            };
            match run_step(
                ctx,
                env,
                &release_name,
                JobPurpose::PreDeploy,
                step,
                p.attempt,
                stage_started,
            ) {
                StepState::Succeeded => {
                    let next = p.step + 1;
                    if next as usize >= env.pre_deploy.len() {
                        begin_rollout(ctx, env, status, targets, &target);
                    } else if let Some(promotion) = status.promotion.as_mut() {
                        promotion.step = next;
                        promotion.stage_started_at = ctx.now_time();
                    }
                }
                StepState::Failed(message) => {
                    let reason = format!("pre-deploy Job {} failed: {message}", step.name);
                    fail_before_change(ctx, env, status, p, reason);
                }
                StepState::TimedOut => {
                    let reason = format!(
                        "pre-deploy Job {} did not finish within {}",
                        step.name,
                        format_duration(step.timeout)
                    );
                    fail_before_change(ctx, env, status, p, reason);
                }
                StepState::Running => {}
            }
        }
        PromotionStage::Rollout => {
            ctx.actions
                .extend(targets::set_images(targets, &target.desired));
            match judge_rollout(ctx, env, status, targets, &target, p) {
                Rollout::Complete => {
                    if let Some(promotion) = status.promotion.as_mut() {
                        promotion.stage = PromotionStage::Verify;
                        promotion.stage_started_at = ctx.now_time();
                    }
                    status.phase = Some(EnvironmentPhase::Verifying);
                    status.message = Some(format!(
                        "{} rolled out to {}; verifying",
                        target.label, env.name
                    ));
                }
                Rollout::Failed(reason) => {
                    verification_failed(ctx, env, status, targets, p, reason)
                }
                Rollout::Unobserved(waiting) => {
                    status.message = Some(format!("rolling out {}: {waiting}", target.label));
                }
                // A workload that will not finish by itself says so; otherwise, observed
                // at last, back to the rollout's own message.
                Rollout::InProgress => match targets::notes(targets) {
                    Some(note) => {
                        status.message = Some(format!(
                            "rolling out {} to {}: {note}",
                            target.label, env.name
                        ));
                    }
                    None if p.unobserved_since.is_some() => {
                        status.message =
                            Some(format!("rolling out {} to {}", target.label, env.name));
                    }
                    None => {}
                },
            }
        }
        PromotionStage::Verify => {
            ctx.actions
                .extend(targets::set_images(targets, &target.desired));
            match verification(ctx, env, targets, &release_name, p, stage_started) {
                Check::Failed(reason) => verification_failed(ctx, env, status, targets, p, reason),
                Check::Pending => {}
                Check::Passed => succeed(ctx, env, status, p),
            }
        }
    }
}

/// Where one Job step stands.
enum StepState {
    Succeeded,
    Failed(String),
    TimedOut,
    Running,
}

/// Runs one Job step of a promotion that started at `started`: asks for the Job if it does
/// not exist, deletes it when it outlives its timeout, and wakes the engine at the deadline.
fn run_step(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    release: &str,
    purpose: JobPurpose,
    step: &ValidJob,
    attempt: u32,
    started: jiff::Timestamp,
) -> StepState {
    let key = JobKey {
        pipeline: &ctx.snap.pipeline.name,
        environment: &env.name,
        release,
        purpose,
        step: &step.name,
        attempt,
    };
    let name = key.name();
    let deadline = Ctx::after(started, step.timeout);
    match ctx
        .job(env.cluster.as_deref(), &env.namespace, &name)
        .map(|j| (j.outcome, j.message.clone()))
    {
        Some((JobOutcome::Succeeded, _)) => StepState::Succeeded,
        Some((JobOutcome::Failed, message)) => {
            StepState::Failed(message.unwrap_or_else(|| "see the Job's logs".into()))
        }
        _ if ctx.now >= deadline => {
            ctx.actions.push(Action::DeleteJob {
                cluster: env.cluster.clone(),
                namespace: env.namespace.clone(),
                name,
            });
            StepState::TimedOut
        }
        observed => {
            if observed.is_none() {
                ctx.create_job(&key, env.cluster.as_deref(), &env.namespace, step);
            }
            ctx.wake_at(deadline);
            StepState::Running
        }
    }
}

fn begin_rollout(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
    target: &Target,
) {
    if let Some(promotion) = status.promotion.as_mut() {
        promotion.stage = PromotionStage::Rollout;
        promotion.stage_started_at = ctx.now_time();
        status.current = promotion.release.clone().map(|release| ReleaseRef {
            release,
            version: target.label.clone(),
            since: Some(ctx.now_time()),
        });
    }
    // The environment no longer runs what downstream soaked on.
    status.healthy = None;
    status.healthy_since = None;
    status.message = Some(format!("rolling out {} to {}", target.label, env.name));
    ctx.actions
        .extend(targets::set_images(targets, &target.desired));
    ctx.wake_at(Ctx::after(ctx.now, env.verify.progress_deadline));
}

enum Check {
    Passed,
    Pending,
    Failed(String),
}

/// The verification probes of an environment.
pub fn verify_probes(ctx: &mut Ctx<'_>, env: &ValidEnvironment) -> Vec<(ProbeId, u32)> {
    let mut ids = Vec::new();
    for (i, http) in env.verify.http.iter().enumerate() {
        let id = ProbeId {
            environment: env.name.clone(),
            purpose: ProbePurpose::Verify,
            kind: ProbeKind::Http,
            name: format!("http[{i}]"),
            release: None,
        };
        ctx.probes.push(ProbeRequest {
            id: id.clone(),
            target: ProbeTarget::Http {
                url: http.url.to_string(),
                expect_status: http.expect_status,
                timeout: http.timeout,
            },
            interval: http.interval,
        });
        ids.push((id, http.failure_threshold));
    }
    for metric in &env.verify.metrics {
        let id = ctx.request_metric(
            &env.name,
            ProbePurpose::Verify,
            metric,
            std::time::Duration::from_secs(30),
        );
        ids.push((id, 1));
    }
    ids
}

/// Whether the verify probes hold, considering only results since `since`: `Err` with the
/// first probe that failed `failureThreshold` times in a row, else `Ok(all passing)`, where
/// "all passing" means every probe has reported and its latest result passed.
pub fn probes_hold(
    ctx: &Ctx<'_>,
    probes: &[(ProbeId, u32)],
    since: jiff::Timestamp,
) -> Result<bool, String> {
    let mut all_passing = true;
    for (id, threshold) in probes {
        match ctx.observation(id) {
            Some(o) if o.at >= since => {
                if !o.ok && o.consecutive_failures >= *threshold {
                    let times = if *threshold > 1 {
                        format!(" ({} times in a row)", o.consecutive_failures)
                    } else {
                        String::new()
                    };
                    return Err(format!("{} failed{times}: {}", describe(id), o.message));
                }
                all_passing &= o.ok;
            }
            _ => all_passing = false,
        }
    }
    Ok(all_passing)
}

fn describe(id: &ProbeId) -> String {
    match id.kind {
        ProbeKind::Http => format!("health check {}", id.name),
        ProbeKind::Metric => format!("metric {}", id.name),
        ProbeKind::Webhook => format!("webhook {}", id.name),
    }
}

fn verification(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    targets: &[Resolved<'_>],
    release: &str,
    p: &PromotionState,
    since: jiff::Timestamp,
) -> Check {
    if !targets::available(targets) {
        return Check::Failed("target workloads lost availability during verification".into());
    }
    let probes = verify_probes(ctx, env);
    let all_passing = match probes_hold(ctx, &probes, since) {
        Err(reason) => return Check::Failed(reason),
        Ok(all_passing) => all_passing,
    };
    let mut tests_done = true;
    for test in &env.verify.tests {
        match run_step(
            ctx,
            env,
            release,
            JobPurpose::Verify,
            test,
            p.attempt,
            since,
        ) {
            StepState::Succeeded => {}
            StepState::Failed(message) => {
                return Check::Failed(format!("verification test {} failed: {message}", test.name));
            }
            StepState::TimedOut => {
                return Check::Failed(format!(
                    "verification test {} did not finish within {}",
                    test.name,
                    format_duration(test.timeout)
                ));
            }
            StepState::Running => tests_done = false,
        }
    }
    let window_end = Ctx::after(since, env.verify.window);
    if ctx.now < window_end {
        ctx.wake_at(window_end);
        return Check::Pending;
    }
    if !all_passing {
        // A probe has not reported since the rollout, or its latest result failed (but not
        // yet failureThreshold times): wait for the next result.
        let first_interval = env
            .verify
            .http
            .iter()
            .map(|h| h.interval)
            .min()
            .unwrap_or(std::time::Duration::from_secs(30));
        ctx.wake_at(Ctx::after(ctx.now, first_interval));
        return Check::Pending;
    }
    if tests_done {
        Check::Passed
    } else {
        Check::Pending
    }
}

fn record(status: &mut EnvironmentStatus, limit: u32, entry: PromotionRecord) {
    status.history.insert(0, entry);
    status.history.truncate(limit as usize);
}

fn succeed(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    p: &PromotionState,
) {
    let release = p.release.clone().unwrap_or_default();
    let version = p.version.clone().unwrap_or_default();
    let started = p.started_at.0;
    let created = ctx.releases.get(release.as_str()).map(|r| r.created);
    let reference = ReleaseRef {
        release: release.clone(),
        version: version.clone(),
        since: Some(ctx.now_time()),
    };
    status.current = Some(reference.clone());
    status.last_good = Some(reference);
    status.promotion = None;
    status.phase = Some(EnvironmentPhase::Idle);
    status.healthy = Some(true);
    status.healthy_since = Some(ctx.now_time());
    status.unhealthy_since = None;
    let duration = elapsed(started, ctx.now);
    status.message = Some(format!("runs {version}, verified"));
    record(
        status,
        ctx.pipeline.history_limit,
        PromotionRecord {
            release: release.clone(),
            version: version.clone(),
            result: PromotionResult::Succeeded,
            started_at: Some(p.started_at.clone()),
            finished_at: Some(ctx.now_time()),
            reason: None,
            requested_by: p.requested_by.clone(),
        },
    );
    let metric = MetricEvent::PromotionFinished {
        result: PromotionResult::Succeeded.label(),
        duration: Some(duration),
        lead_time: created.map(|c| elapsed(c, ctx.now)),
    };
    let message = format!(
        "{version} is healthy in {} after {}",
        env.name,
        format_duration(duration)
    );
    ctx.event(
        Regarding::Pipeline,
        EventType::Normal,
        "PromotionSucceeded",
        &env.name,
        message.clone(),
        Some(metric),
    );
    ctx.event(
        Regarding::Release(release),
        EventType::Normal,
        "PromotionSucceeded",
        &env.name,
        message,
        None,
    );
}

fn mark_failed(ctx: &Ctx<'_>, status: &mut EnvironmentStatus, release: &str, reason: &str) {
    status.failed.retain(|m| m.release != release);
    status.failed.push(ReleaseMark {
        release: release.to_owned(),
        at: ctx.now_time(),
        reason: reason.to_owned(),
    });
}

/// A pre-deploy step failed: nothing changed in the cluster, so nothing to roll back.
fn fail_before_change(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    p: &PromotionState,
    reason: String,
) {
    let release = p.release.clone().unwrap_or_default();
    let version = p.version.clone().unwrap_or_default();
    mark_failed(ctx, status, &release, &reason);
    status.promotion = None;
    status.phase = Some(EnvironmentPhase::Idle);
    status.message = Some(format!("{version} failed before deploying: {reason}"));
    record(
        status,
        ctx.pipeline.history_limit,
        PromotionRecord {
            release: release.clone(),
            version: version.clone(),
            result: PromotionResult::Failed,
            started_at: Some(p.started_at.clone()),
            finished_at: Some(ctx.now_time()),
            reason: Some(reason.clone()),
            requested_by: p.requested_by.clone(),
        },
    );
    let metric = MetricEvent::PromotionFinished {
        result: PromotionResult::Failed.label(),
        duration: None,
        lead_time: None,
    };
    let message = format!("{version} failed in {}: {reason}", env.name);
    ctx.event(
        Regarding::Pipeline,
        EventType::Warning,
        "PromotionFailed",
        &env.name,
        message.clone(),
        Some(metric),
    );
    ctx.event(
        Regarding::Release(release),
        EventType::Warning,
        "PromotionFailed",
        &env.name,
        message,
        None,
    );
}

/// The deployed release failed: mark it, then roll back (or hold, if automatic rollback is off).
fn verification_failed(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
    p: &PromotionState,
    reason: String,
) {
    let release = p.release.clone().unwrap_or_default();
    let version = p.version.clone().unwrap_or_default();
    mark_failed(ctx, status, &release, &reason);
    let result = if env.rollback.automatic {
        PromotionResult::RolledBack
    } else {
        PromotionResult::Failed
    };
    record(
        status,
        ctx.pipeline.history_limit,
        PromotionRecord {
            release: release.clone(),
            version: version.clone(),
            result,
            started_at: Some(p.started_at.clone()),
            finished_at: Some(ctx.now_time()),
            reason: Some(reason.clone()),
            requested_by: p.requested_by.clone(),
        },
    );
    let metric = MetricEvent::PromotionFinished {
        result: result.label(),
        duration: None,
        lead_time: None,
    };
    let message = format!("{version} failed verification in {}: {reason}", env.name);
    ctx.event(
        Regarding::Pipeline,
        EventType::Warning,
        "VerificationFailed",
        &env.name,
        message.clone(),
        Some(metric),
    );
    ctx.event(
        Regarding::Release(release.clone()),
        EventType::Warning,
        "VerificationFailed",
        &env.name,
        message,
        None,
    );
    status.promotion = None;
    if env.rollback.automatic {
        let to = status.last_good.as_ref().map(|r| r.release.clone());
        start_rollback(
            ctx,
            env,
            status,
            targets,
            to,
            "verification",
            Some(release),
            reason,
            None,
        );
    } else {
        degrade(
            ctx,
            env,
            status,
            format!("{version} failed verification and automatic rollback is off, so it is held"),
        );
    }
}

/// Starts restoring `to` (a release that ran here) or, with `None`, the baseline.
#[allow(clippy::too_many_arguments)]
pub fn start_rollback(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
    to: Option<String>,
    trigger: &'static str,
    failed_release: Option<String>,
    reason: String,
    requested_by: Option<String>,
) {
    let target = match target_of(ctx, status, targets, to.as_deref()) {
        Ok(target) => target,
        Err(why) => return degrade(ctx, env, status, format!("cannot roll back: {why}")),
    };
    status.promotion = Some(PromotionState {
        kind: PromotionKind::Rollback,
        release: to.clone(),
        version: to.as_ref().map(|_| target.label.clone()),
        stage: PromotionStage::Rollout,
        step: 0,
        started_at: ctx.now_time(),
        stage_started_at: ctx.now_time(),
        rollout_observed_at: None,
        unobserved_since: None,
        attempt: 0,
        requested_by: requested_by.clone(),
        failed_release,
        trigger: Some(trigger.to_owned()),
        reason: Some(reason.clone()),
    });
    status.current = to.map(|release| ReleaseRef {
        release,
        version: target.label.clone(),
        since: Some(ctx.now_time()),
    });
    status.phase = Some(EnvironmentPhase::RollingBack);
    status.healthy = None;
    status.healthy_since = None;
    if status.unhealthy_since.is_none() {
        status.unhealthy_since = Some(ctx.now_time());
    }
    let message = rollback_message(&env.name, &target.label, requested_by.as_deref(), &reason);
    status.message = Some(message.clone());
    ctx.event(
        Regarding::Pipeline,
        EventType::Warning,
        "RollbackStarted",
        &env.name,
        message,
        Some(MetricEvent::Rollback { trigger }),
    );
    ctx.actions
        .extend(targets::set_images(targets, &target.desired));
    ctx.wake_at(Ctx::after(ctx.now, env.verify.progress_deadline));
}

fn advance_rollback(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
    p: &PromotionState,
) {
    let target = match target_of(ctx, status, targets, p.release.as_deref()) {
        Ok(target) => target,
        Err(why) => return degrade(ctx, env, status, format!("cannot roll back: {why}")),
    };
    ctx.actions
        .extend(targets::set_images(targets, &target.desired));
    let rollout = judge_rollout(ctx, env, status, targets, &target, p);
    match &rollout {
        Rollout::Unobserved(waiting) => {
            status.message = Some(format!(
                "rolling {} back to {}: {waiting}",
                env.name, target.label
            ));
        }
        // Observed at last: the message says why it rolls back again.
        Rollout::InProgress if p.unobserved_since.is_some() => {
            status.message = Some(rollback_message(
                &env.name,
                &target.label,
                p.requested_by.as_deref(),
                p.reason.as_deref().unwrap_or_default(),
            ));
        }
        _ => {}
    }
    if rollout == Rollout::Complete {
        let after = status.unhealthy_since.as_ref().map_or_else(
            || elapsed(p.started_at.0, ctx.now),
            |t| elapsed(t.0, ctx.now),
        );
        status.promotion = None;
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
    } else if let Rollout::Failed(why) = rollout {
        degrade(
            ctx,
            env,
            status,
            format!("the rollback to {} failed: {why}", target.label),
        );
    }
}

/// What a rollback says while it rolls out.
fn rollback_message(
    environment: &str,
    label: &str,
    requested_by: Option<&str>,
    reason: &str,
) -> String {
    let by = requested_by
        .map(|who| format!(" (asked by {who})"))
        .unwrap_or_default();
    format!("rolling {environment} back to {label}{by}: {reason}")
}

/// Where a rollout stands, judged on what the workload controllers have seen.
#[derive(Debug, PartialEq)]
enum Rollout {
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

/// Judges the rollout of `target` and keeps `rollout_observed_at` / `unobserved_since`
/// of the promotion in `status` up to date. A control plane that lags behind (a
/// Deployment controller minutes behind at its default QPS) only makes the rollout wait,
/// visibly; the deadline counts from the moment the new spec was observed.
fn judge_rollout(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    targets: &[Resolved<'_>],
    target: &Target,
    p: &PromotionState,
) -> Rollout {
    let deadline = env.verify.progress_deadline;
    // Until the store shows our images, the change is in flight: the deadline counts from
    // the stage's start as before, so an image someone keeps reverting still fails.
    let ours = targets::images_match(targets, &target.desired);
    let unobserved = if ours {
        targets::unobserved(targets)
    } else {
        Vec::new()
    };
    let promotion = status.promotion.as_mut();
    if ours && unobserved.is_empty() {
        // Seen lagging before: observed now (the Deployment watch brings the change at
        // once). Never seen lagging: observed from the start, as far as anyone can tell.
        let observed_at = match (&p.rollout_observed_at, &p.unobserved_since) {
            (Some(at), _) => at.0,
            (None, Some(_)) => ctx.now,
            (None, None) => p.stage_started_at.0,
        };
        if let Some(promotion) = promotion {
            promotion.rollout_observed_at = Some(Time(observed_at));
            promotion.unobserved_since = None;
        }
        if targets::rolled_out(targets) {
            return Rollout::Complete;
        }
        if let Some(reason) = targets::stuck(targets) {
            return Rollout::Failed(reason);
        }
        let counted_from = match targets::kinds_of(targets).as_slice() {
            [kind] => format!(" of the {kind} controller observing it"),
            _ => " of the workload controllers observing it".to_owned(),
        };
        return match until_deadline(ctx, observed_at, deadline, &counted_from) {
            // Pods that change only when deleted: the failure says why it did not complete.
            Rollout::Failed(reason) => match targets::notes(targets) {
                Some(note) => Rollout::Failed(format!("{reason} ({note})")),
                None => Rollout::Failed(reason),
            },
            waiting => waiting,
        };
    }
    if let Some(lagging) = unobserved.first() {
        let since = p.unobserved_since.as_ref().map_or(ctx.now, |t| t.0);
        if let Some(promotion) = promotion {
            promotion.unobserved_since = Some(Time(since));
        }
        // Past the deadline the Pipeline says the control plane lags; wake to say it.
        ctx.wake_at(Ctx::after(since, deadline));
        let others = match unobserved.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Rollout::Unobserved(format!(
            "waiting for the {} controller to observe generation {} of {}/{}{others} (observed: {}) since {}; the progress deadline starts once it has",
            lagging.kind,
            lagging.generation,
            lagging.namespace,
            lagging.name,
            lagging.observed_generation,
            truncate(since),
        ));
    }
    until_deadline(ctx, p.stage_started_at.0, deadline, "")
}

/// In progress until `start` plus `deadline` (the engine wakes then), failed after, with a
/// reason that says what the deadline counts from.
fn until_deadline(
    ctx: &mut Ctx<'_>,
    start: jiff::Timestamp,
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

/// No automatic way forward: hold, say so, and wait for a person. Never loop.
fn degrade(ctx: &mut Ctx<'_>, env: &ValidEnvironment, status: &mut EnvironmentStatus, why: String) {
    status.promotion = None;
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
