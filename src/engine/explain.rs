//! What people read: conditions, the one-line summary, and per-release statuses saying
//! where each release stands in each environment and what blocks it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{
    context::{Ctx, truncate},
    decision::{Decision, Event, EventType, Regarding},
    promotion::{DeployStage, Promotion},
    snapshot::Snapshot,
};
use crate::{
    api::{
        ApprovalStatus, Decision as Verdict, EnvironmentPhase, EnvironmentStatus, OverrideRecord,
        PipelineStatus, PromotionResult, ReleaseEnvironmentState as State,
        ReleaseEnvironmentStatus, ReleasePhase, ReleaseStatus,
    },
    validation::Problems,
};

/// The promotion in flight in `env`, typed. The engine wrote it, so it reads back.
fn in_flight(env: &EnvironmentStatus) -> Option<Promotion> {
    env.promotion.as_ref().and_then(|p| Promotion::read(p).ok())
}

/// Sets a condition, keeping its transition time when its status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: &Time,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let previous = conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time,
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(slot) => *slot = condition,
        None => conditions.push(condition),
    }
}

/// An invalid spec: say so in `Ready` and wait for a change. Nothing else is touched.
pub fn invalid_spec(snap: &Snapshot, problems: &Problems) -> Decision {
    let now = Time(super::context::truncate(snap.now));
    let mut status = snap.pipeline.status.clone();
    let errors: Vec<String> = problems
        .errors()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    let message = format!("the spec is invalid: {}", errors.join("; "));
    let was = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.reason.clone(), c.message.clone()));
    let generation = Some(snap.pipeline.generation);
    set_condition(
        &mut status.conditions,
        "Ready",
        false,
        "InvalidSpec",
        message.clone(),
        &now,
        generation,
    );
    status.observed_generation = generation;
    let mut events = Vec::new();
    if was != Some(("InvalidSpec".into(), message.clone())) {
        events.push(Event {
            regarding: Regarding::Pipeline,
            kind: EventType::Warning,
            reason: "InvalidSpec",
            message,
            environment: None,
            metric: None,
        });
    }
    Decision {
        pipeline_status: status,
        events,
        ..Decision::default()
    }
}

/// The Pipeline status from the environments' new state.
pub fn pipeline_status(
    ctx: &Ctx<'_>,
    previous: &PipelineStatus,
    environments: Vec<EnvironmentStatus>,
    overrides: Vec<OverrideRecord>,
) -> PipelineStatus {
    let now = ctx.now_time();
    let generation = Some(ctx.snap.pipeline.generation);
    let mut status = PipelineStatus {
        conditions: previous.conditions.clone(),
        ..Default::default()
    };
    let degraded: Vec<&str> = environments
        .iter()
        .filter(|e| e.phase == Some(EnvironmentPhase::Degraded))
        .map(|e| e.name.as_str())
        .collect();
    let moving: Vec<String> = environments
        .iter()
        .filter_map(|e| {
            in_flight(e).map(|p| format!("{} → {}", e.name, p.version().unwrap_or("baseline")))
        })
        .collect();
    if degraded.is_empty() {
        set_condition(
            &mut status.conditions,
            "Degraded",
            false,
            "AllEnvironmentsHealthy",
            "no environment is Degraded".into(),
            &now,
            generation,
        );
        set_condition(
            &mut status.conditions,
            "Ready",
            true,
            "Reconciled",
            "the spec is valid and no environment is Degraded".into(),
            &now,
            generation,
        );
    } else {
        let message = format!(
            "Degraded: {}; a person must roll back or retry",
            degraded.join(", ")
        );
        set_condition(
            &mut status.conditions,
            "Degraded",
            true,
            "RollbackFailed",
            message.clone(),
            &now,
            generation,
        );
        set_condition(
            &mut status.conditions,
            "Ready",
            false,
            "EnvironmentDegraded",
            message,
            &now,
            generation,
        );
    }
    // A workload controller that has not observed a rollout's new spec for longer than
    // the environment's progress deadline: the control plane lags. The rollout waits (it
    // is never failed for it); this condition says so.
    let lagging: Vec<String> = environments
        .iter()
        .filter_map(|e| {
            let since = in_flight(e)?.rolling_out()?.unobserved_since?;
            let deadline = ctx
                .pipeline
                .environments
                .iter()
                .find(|v| v.name == e.name)?
                .verify
                .progress_deadline;
            (ctx.now >= Ctx::after(since, deadline))
                .then(|| format!("{} (since {})", e.name, truncate(since)))
        })
        .collect();
    if lagging.is_empty() {
        set_condition(
            &mut status.conditions,
            "WorkloadControllerLagging",
            false,
            "Observed",
            "every rollout in flight has been observed by its workload controller within the progress deadline".into(),
            &now,
            generation,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "WorkloadControllerLagging",
            true,
            "RolloutNotObserved",
            format!(
                "the workload controller has not observed the new spec for longer than the progress deadline in: {}; the rollouts wait and are not failed for it",
                lagging.join(", ")
            ),
            &now,
            generation,
        );
    }
    // Another field manager keeps setting an environment's images back: repair stopped.
    let fights: Vec<String> = environments
        .iter()
        .filter_map(|e| {
            let fight = e.drift_fight.as_ref()?;
            let who = if fight.managers.is_empty() {
                "another field manager".to_owned()
            } else {
                fight.managers.join(", ")
            };
            Some(format!("{} (by {who}, since {})", e.name, fight.since.0))
        })
        .collect();
    if fights.is_empty() {
        set_condition(
            &mut status.conditions,
            "DriftFight",
            false,
            "NoFight",
            "no other field manager keeps setting the targets' images back".into(),
            &now,
            generation,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "DriftFight",
            true,
            "ImagesSetBack",
            format!(
                "drift repair is stopped in: {}; see docs/gitops.md to leave the images to Greenlight, then ask for a retry",
                fights.join(", ")
            ),
            &now,
            generation,
        );
    }
    git_conditions(ctx, &mut status, &environments, &now, generation);
    // Environments in another cluster that cannot be used now: they wait, the others go on.
    let cut_off: Vec<String> = ctx
        .pipeline
        .environments
        .iter()
        .filter_map(|e| {
            let cluster = e.cluster.as_ref()?;
            let outage = ctx
                .snap
                .unreachable
                .iter()
                .find(|u| &u.cluster == cluster && u.namespace == e.namespace)?;
            Some(format!("{} (cluster {cluster}: {})", e.name, outage.reason))
        })
        .collect();
    if ctx
        .pipeline
        .environments
        .iter()
        .all(|e| e.cluster.is_none())
    {
        // Only Pipelines with environments in other clusters carry the condition.
        status
            .conditions
            .retain(|c| c.type_ != "ClusterUnreachable");
    } else if cut_off.is_empty() {
        set_condition(
            &mut status.conditions,
            "ClusterUnreachable",
            false,
            "Reachable",
            "every environment's cluster answers".into(),
            &now,
            generation,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "ClusterUnreachable",
            true,
            "ClusterUnreachable",
            format!(
                "these environments wait until their cluster can be used again (retried with backoff): {}",
                cut_off.join("; ")
            ),
            &now,
            generation,
        );
    }
    if moving.is_empty() {
        set_condition(
            &mut status.conditions,
            "Progressing",
            false,
            "Idle",
            "no promotion in flight".into(),
            &now,
            generation,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "Progressing",
            true,
            "Promoting",
            moving.join(", "),
            &now,
            generation,
        );
    }
    status.summary = Some(
        environments
            .iter()
            .map(|e| {
                let running = e
                    .current
                    .as_ref()
                    .map_or("baseline", |c| c.version.as_str());
                match in_flight(e) {
                    Some(Promotion::Deploy(deploy)) => {
                        format!("{}={}→{}", e.name, running, deploy.version)
                    }
                    _ if e.phase == Some(EnvironmentPhase::Degraded) => {
                        format!("{}={}(degraded)", e.name, running)
                    }
                    _ => format!("{}={}", e.name, running),
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    );
    status.observed_generation = generation;
    status.environments = environments;
    status.overrides = overrides;
    status
}

/// Projects the release and approval statuses and assembles the decision.
pub fn finish(ctx: Ctx<'_>, status: PipelineStatus) -> Decision {
    // Each environment's promotion, typed once: every release below looks at each.
    let flights: Vec<Option<Promotion>> = status.environments.iter().map(in_flight).collect();
    let mut release_statuses = BTreeMap::new();
    for release in ctx.releases.values() {
        if !settled(&ctx, &status, &flights, release) {
            release_statuses.insert(
                release.name.clone(),
                release_status(&ctx, &status, &flights, release),
            );
        }
    }
    let approval_statuses = approval_statuses(&ctx, &release_statuses);
    let mut probes = ctx.probes;
    probes.sort_by(|a, b| a.id.cmp(&b.id));
    probes.dedup_by(|a, b| a.id == b.id);
    Decision {
        pipeline_status: status,
        release_statuses,
        approval_statuses,
        actions: ctx.actions,
        probes,
        events: ctx.events,
        requeue_at: ctx.wake,
    }
}

/// A release whose status can no longer change: its last written status is terminal
/// (Superseded or Failed), it waits nowhere, and no environment refers to it. It cannot
/// become a candidate again: that needs its ref accepted somewhere (then it would be
/// waiting there now) or running verified upstream (then that environment would refer to
/// it). Most releases of a long-lived pipeline are settled; not projecting them again keeps
/// a decision cheap, and their written status stays right.
/// `flights` holds each environment's promotion, in the order of `status.environments`.
fn settled(
    ctx: &Ctx<'_>,
    status: &PipelineStatus,
    flights: &[Option<Promotion>],
    release: &super::snapshot::ReleaseView,
) -> bool {
    let terminal = release.status.as_ref().is_some_and(|s| {
        matches!(
            s.phase,
            Some(ReleasePhase::Superseded | ReleasePhase::Failed)
        )
    });
    let named =
        |r: &Option<crate::api::ReleaseRef>| r.as_ref().is_some_and(|r| r.release == release.name);
    terminal
        && status
            .environments
            .iter()
            .zip(flights)
            .all(|(env, flight)| {
                !named(&env.current)
                    && !named(&env.last_good)
                    && flight
                        .as_ref()
                        .is_none_or(|p| p.release() != Some(&release.name))
                    && !env.failed.iter().any(|m| m.release == release.name)
                    && !ctx.is_waiting(&release.name, &env.name)
            })
}

fn release_status(
    ctx: &Ctx<'_>,
    status: &PipelineStatus,
    flights: &[Option<Promotion>],
    release: &super::snapshot::ReleaseView,
) -> ReleaseStatus {
    let now = ctx.now_time();
    let mut environments = Vec::new();
    for (env, flight) in status.environments.iter().zip(flights) {
        let is = |r: &Option<crate::api::ReleaseRef>| {
            r.as_ref().is_some_and(|r| r.release == release.name)
        };
        let deploying = flight
            .as_ref()
            .and_then(Promotion::deploying)
            .filter(|d| d.release == release.name);
        let entry = if let Some(deploy) = deploying {
            let state = if matches!(deploy.stage, DeployStage::Verify { .. }) {
                State::Verifying
            } else {
                State::Deploying
            };
            Some((
                state,
                Some(Time(deploy.stage_since())),
                env.message.clone(),
                vec![],
            ))
        } else if let Some(mark) = env.failed.iter().find(|m| m.release == release.name) {
            Some((
                State::Failed,
                Some(mark.at.clone()),
                Some(mark.reason.clone()),
                vec![],
            ))
        } else if is(&env.current) && is(&env.last_good) {
            if env.healthy == Some(false) {
                Some((
                    State::Unhealthy,
                    env.unhealthy_since.clone(),
                    env.message.clone(),
                    vec![],
                ))
            } else {
                Some((State::Healthy, env.healthy_since.clone(), None, vec![]))
            }
        } else if let Some(reject) = ctx
            .approvals_of(Verdict::Reject, &release.name, &env.name)
            .first()
        {
            let why = reject
                .spec
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Some((
                State::Rejected,
                Some(Time(reject.created)),
                Some(format!("rejected by {}{why}", reject.spec.approver)),
                vec![],
            ))
        } else if let Some(blocking) = ctx.waiting_for(&release.name, &env.name) {
            let message = blocking.first().map(|b| b.reason.clone());
            Some((State::Waiting, None, message, blocking.clone()))
        } else if let Some(newer) = ctx
            .superseded_by(&release.name, &env.name)
            .or_else(|| older_than_current(ctx, status, env, release))
        {
            Some((
                State::Superseded,
                None,
                Some(format!("superseded by {}", ctx.version_of(newer))),
                vec![],
            ))
        } else if env
            .history
            .iter()
            .any(|h| h.release == release.name && h.result == PromotionResult::Succeeded)
        {
            Some((
                State::Superseded,
                None,
                Some("a newer release runs here".into()),
                vec![],
            ))
        } else {
            None
        };
        if let Some((state, since, message, blocked_by)) = entry {
            let previous = release
                .status
                .as_ref()
                .and_then(|s| s.environments.iter().find(|e| e.name == env.name));
            let since = match previous {
                Some(p) if p.state == state && p.since.is_some() => p.since.clone(),
                _ => since.or_else(|| Some(now.clone())),
            };
            environments.push(ReleaseEnvironmentStatus {
                name: env.name.clone(),
                state,
                since,
                message,
                blocked_by,
            });
        }
    }
    let any = |s: State| environments.iter().any(|e| e.state == s);
    let phase = if any(State::Waiting) || any(State::Deploying) || any(State::Verifying) {
        ReleasePhase::Progressing
    } else if any(State::Failed) {
        ReleasePhase::Failed
    } else if any(State::Healthy) || any(State::Unhealthy) {
        ReleasePhase::Complete
    } else if !environments.is_empty()
        && environments
            .iter()
            .all(|e| e.state == State::Superseded || e.state == State::Rejected)
    {
        ReleasePhase::Superseded
    } else {
        ReleasePhase::Pending
    };
    let furthest = ctx
        .pipeline
        .topological_order
        .iter()
        .rev()
        .map(|&i| &ctx.pipeline.environments[i].name)
        .find(|name| {
            environments
                .iter()
                .any(|e| &e.name == *name && e.state == State::Healthy)
        })
        .cloned();
    let mut conditions = release
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let entry_points: Vec<&str> = ctx
        .pipeline
        .environments
        .iter()
        .filter(|e| e.accepts_ref(&release.spec.source.git_ref))
        .map(|e| e.name.as_str())
        .collect();
    if entry_points.is_empty() {
        let message = format!(
            "{:?} matches no environment's accepts",
            release.spec.source.git_ref
        );
        set_condition(
            &mut conditions,
            "Accepted",
            false,
            "NoMatchingEnvironment",
            message,
            &now,
            None,
        );
    } else {
        set_condition(
            &mut conditions,
            "Accepted",
            true,
            "Accepted",
            format!("enters {}", entry_points.join(", ")),
            &now,
            None,
        );
    }
    let (ready, reason) = match phase {
        ReleasePhase::Complete => (true, "Complete"),
        ReleasePhase::Progressing => (false, "Progressing"),
        ReleasePhase::Failed => (false, "Failed"),
        ReleasePhase::Superseded => (false, "Superseded"),
        ReleasePhase::Pending => (false, "Pending"),
    };
    let message = environments
        .iter()
        .map(|e| format!("{}: {:?}", e.name, e.state))
        .collect::<Vec<_>>()
        .join(", ");
    set_condition(
        &mut conditions,
        "Ready",
        ready,
        reason,
        if message.is_empty() {
            "not in any environment yet".into()
        } else {
            message
        },
        &now,
        None,
    );
    ReleaseStatus {
        observed_generation: None,
        conditions,
        phase: Some(phase),
        furthest_environment: furthest,
        environments,
    }
}

fn approval_statuses(
    ctx: &Ctx<'_>,
    projected: &BTreeMap<String, ReleaseStatus>,
) -> BTreeMap<String, ApprovalStatus> {
    let now = ctx.now_time();
    let mut out = BTreeMap::new();
    for approval in &ctx.snap.approvals {
        let Some(release) = ctx.releases.get(approval.spec.release.as_str()) else {
            continue;
        };
        if !projected.contains_key(&release.name) && approval.status.is_some() {
            // The release is settled, and so is what its approvals meant.
            continue;
        }
        let Some(env) = ctx.pipeline.environment(&approval.spec.environment) else {
            continue;
        };
        let (counted, reason, message) = match approval.spec.decision {
            Verdict::Approve => {
                let tally =
                    super::approvals::tally(&env.gates, release, &env.name, &ctx.snap.approvals);
                if tally.counted.contains(&approval.name) {
                    (
                        true,
                        "Counted",
                        format!(
                            "counts towards {} in {}",
                            env.gates
                                .approvals
                                .iter()
                                .map(|r| r.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            env.name
                        ),
                    )
                } else if let Some((_, why)) =
                    tally.ignored.iter().find(|(n, _)| n == &approval.name)
                {
                    (false, "NotCounted", why.clone())
                } else {
                    (
                        false,
                        "NoApprovalRules",
                        format!("{} has no approval rules", env.name),
                    )
                }
            }
            Verdict::Reject => (
                true,
                "Rejected",
                format!("blocks {} in {}", release.spec.version, env.name),
            ),
            Verdict::PromoteNow
            | Verdict::Retry
            | Verdict::Rollback
            | Verdict::PromoteStep
            | Verdict::AbortCanary => (
                true,
                "Override",
                format!(
                    "{:?} for {} in {}",
                    approval.spec.decision, release.spec.version, env.name
                ),
            ),
        };
        let mut conditions = approval
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        set_condition(
            &mut conditions,
            "Counted",
            counted,
            reason,
            message,
            &now,
            None,
        );
        out.insert(approval.name.clone(), ApprovalStatus { conditions });
    }
    out
}

/// The release `env` runs, if `release` reached `env` as a candidate (its ref is accepted
/// there, or it was verified in every upstream) and is older: it was superseded there.
fn older_than_current<'c>(
    ctx: &Ctx<'_>,
    status: &PipelineStatus,
    env: &'c EnvironmentStatus,
    release: &super::snapshot::ReleaseView,
) -> Option<&'c String> {
    let current = env.current.as_ref()?;
    let running = ctx.releases.get(current.release.as_str())?;
    let spec = ctx.pipeline.environment(&env.name)?;
    let verified_in = |i: &usize| {
        let name = &ctx.pipeline.environments[*i].name;
        status
            .environments
            .iter()
            .find(|e| &e.name == name)
            .is_some_and(|e| {
                e.history
                    .iter()
                    .any(|h| h.release == release.name && h.result == PromotionResult::Succeeded)
            })
    };
    let entered = spec.accepts_ref(&release.spec.source.git_ref)
        || (!spec.upstream.is_empty() && spec.upstream.iter().all(verified_in));
    ((release.created, &release.name) < (running.created, &running.name) && entered)
        .then_some(&current.release)
}

/// The conditions of Pipelines with environments in GitOps mode: a repository that cannot
/// be read (`RepositoryUnreachable`), a person's commit that holds an environment
/// (`ChangedInGit`). Pipelines without any carry neither.
fn git_conditions(
    ctx: &Ctx<'_>,
    status: &mut PipelineStatus,
    environments: &[EnvironmentStatus],
    now: &Time,
    generation: Option<i64>,
) {
    if ctx.pipeline.environments.iter().all(|e| e.git.is_none()) {
        status
            .conditions
            .retain(|c| c.type_ != "RepositoryUnreachable" && c.type_ != "ChangedInGit");
        return;
    }
    let unreadable: Vec<String> = ctx
        .snap
        .git
        .iter()
        .filter_map(|view| {
            let why = view.state.as_ref().err()?;
            Some(format!("{}: {why}", view.environment))
        })
        .collect();
    if unreadable.is_empty() {
        set_condition(
            &mut status.conditions,
            "RepositoryUnreachable",
            false,
            "Reachable",
            "every GitOps environment's repository can be read".into(),
            now,
            generation,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "RepositoryUnreachable",
            true,
            "RepositoryUnreachable",
            format!(
                "these environments wait until their repository can be read again (retried with backoff): {}",
                unreadable.join("; ")
            ),
            now,
            generation,
        );
    }
    // A person's commit changed an environment's images in Git: held, not overwritten.
    let changed: Vec<String> = environments
        .iter()
        .filter_map(|e| {
            let hold = e.git_change.as_ref().filter(|h| h.retried_by.is_none())?;
            Some(format!(
                "{} (commit {} by {}: {:?}, since {})",
                e.name,
                super::short(&hold.commit),
                hold.author,
                hold.summary,
                hold.since.0
            ))
        })
        .collect();
    if changed.is_empty() {
        set_condition(
            &mut status.conditions,
            "ChangedInGit",
            false,
            "AsCommitted",
            "every GitOps environment declares what Greenlight committed".into(),
            now,
            generation,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "ChangedInGit",
            true,
            "PersonsCommit",
            format!(
                "held for a person's commit that changed the images in Git: {}; revert it, or ask for a retry of the release the environment runs (docs/gitops.md)",
                changed.join(", ")
            ),
            now,
            generation,
        );
    }
}
