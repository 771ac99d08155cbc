//! The verification of a deploy: the target workloads stay available, the HTTP and metric
//! probes hold, and the verification test Jobs pass, for the whole window.

use super::steps::{self, StepState};
use crate::{
    engine::{
        context::Ctx,
        decision::{ProbeRequest, ProbeTarget},
        jobs::JobPurpose,
        snapshot::{ProbeId, ProbeKind, ProbePurpose},
        targets::Targets,
    },
    validation::{ValidEnvironment, format_duration},
};

/// Where the verification of a deploy stands.
pub(super) enum Check {
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

/// Verification of `release` rolled out at `since`: the target workloads stay available,
/// the probes hold, the tests pass, for the whole window.
pub(super) fn verification(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    targets: &Targets<'_>,
    release: &str,
    attempt: u32,
    since: jiff::Timestamp,
) -> Check {
    if !targets.available() {
        return Check::Failed("target workloads lost availability during verification".into());
    }
    let probes = verify_probes(ctx, env);
    let all_passing = match probes_hold(ctx, &probes, since) {
        Err(reason) => return Check::Failed(reason),
        Ok(all_passing) => all_passing,
    };
    let mut tests_done = true;
    for test in &env.verify.tests {
        match steps::run(ctx, env, release, JobPurpose::Verify, test, attempt, since) {
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
        wake_for_next_result(ctx, env);
        return Check::Pending;
    }
    if tests_done {
        Check::Passed
    } else {
        Check::Pending
    }
}

/// Wakes the engine when the soonest verification probe reports again.
pub(super) fn wake_for_next_result(ctx: &mut Ctx<'_>, env: &ValidEnvironment) {
    let first_interval = env
        .verify
        .http
        .iter()
        .map(|h| h.interval)
        .min()
        .unwrap_or(std::time::Duration::from_secs(30));
    ctx.wake_at(Ctx::after(ctx.now, first_interval));
}
