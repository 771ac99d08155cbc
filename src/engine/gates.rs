//! Gate evaluation for one candidate release and one environment: checks, soak,
//! approvals, schedule, freeze, metrics, webhooks and test Jobs. Every blocking gate is
//! reported with a reason and, when time alone will open it, the instant it opens.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::{
    approvals::tally,
    clock::TimeGate,
    context::{Ctx, truncate},
    decision::{Action, ProbeRequest, ProbeTarget},
    gate::Gate,
    jobs::{JobKey, JobPurpose},
    snapshot::{
        GATE_OBSERVATION_MAX_AGE, JobOutcome, ProbeId, ProbeKind, ProbePurpose, ReleaseView,
    },
};
use crate::{
    api::{BlockingGate, CheckState, EnvironmentStatus, GateTestRecord},
    validation::{ValidEnvironment, format_duration},
};

/// The names of the gates that can block a candidate for `env` (the `gate` label of
/// `greenlight_promotion_blocked_seconds`): the ones its spec configures, `pending` while
/// later gates wait for the cheaper ones, and the holds every environment can have.
pub fn gates_that_can_block(env: &ValidEnvironment) -> Vec<&'static str> {
    configured(env).into_iter().map(Gate::label).collect()
}

/// The gates that can block a candidate for `env`: see [`gates_that_can_block`].
fn configured(env: &ValidEnvironment) -> Vec<Gate> {
    let gates = &env.gates;
    let later = !gates.metrics.is_empty() || !gates.webhooks.is_empty() || !gates.tests.is_empty();
    [
        (Gate::Checks, !gates.checks.is_empty()),
        (Gate::Soak, gates.soak.is_some()),
        (Gate::Approvals, !gates.approvals.is_empty()),
        (Gate::Schedule, !gates.schedule.is_empty()),
        (Gate::Freeze, !gates.freeze.is_empty()),
        (Gate::Metrics, !gates.metrics.is_empty()),
        (Gate::Webhooks, !gates.webhooks.is_empty()),
        (Gate::Tests, !gates.tests.is_empty()),
        (Gate::Pending, later),
    ]
    .into_iter()
    .filter_map(|(gate, configured)| configured.then_some(gate))
    .chain(Gate::HOLDS)
    .collect()
}

/// How a release became a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Its ref matches `accepts`: soak does not apply.
    Direct,
    /// It is Healthy in every upstream environment.
    Upstream,
}

/// What the gates say.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The gates that block, with reasons.
    pub blocking: Vec<BlockingGate>,
    /// Who asked to promote now (the schedule gate was skipped for them).
    pub promote_now_by: Option<String>,
    /// Gate test Jobs are running for this candidate.
    pub tests_running: bool,
    /// Names of the gates that passed, for the Event.
    pub passed: Vec<Gate>,
}

impl Verdict {
    /// Whether every gate passed.
    pub fn passes(&self) -> bool {
        self.blocking.is_empty()
    }

    fn block(&mut self, gate: Gate, reason: String, opens: Option<Timestamp>) {
        self.blocking.push(BlockingGate {
            gate: gate.label().to_owned(),
            reason,
            next_open: opens.map(Time),
        });
    }
}

/// Evaluates every gate of `env` for `release`. Test Jobs start only when `run_tests` and
/// every cheaper gate passes; their results are recorded in `status.gate_tests`.
pub fn evaluate(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    release: &ReleaseView,
    entry: Entry,
    upstream_healthy_since: &[(String, Option<Timestamp>)],
    run_tests: bool,
) -> Verdict {
    let gates = &env.gates;
    let mut verdict = Verdict::default();
    let now = ctx.now;

    // A gate test that already failed for this attempt blocks whatever the other gates
    // say, until a person retries: it is the first thing to tell.
    let attempt_now = attempt(ctx, &release.name, &env.name);
    let known_failures: Vec<String> = status
        .gate_tests
        .iter()
        .filter(|r| r.release == release.name && r.attempt == attempt_now && !r.passed)
        .map(|r| {
            format!(
                "{} failed: {}",
                r.test,
                r.message.as_deref().unwrap_or("the Job failed")
            )
        })
        .collect();
    if !known_failures.is_empty() {
        let reason = format!(
            "{}; tests run again only if a person retries the release",
            known_failures.join("; ")
        );
        verdict.block(Gate::Tests, reason, None);
    }
    let tests_failed = !known_failures.is_empty();

    // checks
    let missing: Vec<String> = gates
        .checks
        .iter()
        .filter_map(
            |name| match release.spec.checks.iter().find(|c| &c.name == name) {
                Some(check) if check.state == CheckState::Passed => None,
                Some(check) => Some(format!("{name} ({:?})", check.state)),
                None => Some(format!("{name} (not reported)")),
            },
        )
        .collect();
    if missing.is_empty() {
        verdict.passed.push(Gate::Checks);
    } else {
        verdict.block(
            Gate::Checks,
            format!("waiting for checks to pass: {}", missing.join(", ")),
            None,
        );
    }

    // soak
    if let (Some(soak), Entry::Upstream) = (gates.soak, entry) {
        let mut ready_at = now;
        let mut behind = Vec::new();
        for (name, since) in upstream_healthy_since {
            let Some(since) = since else { continue };
            let at = Ctx::after(*since, soak);
            if at > now {
                // No "for 3m of 2h": a message that changes with `now` would change the
                // status on every reconcile, and each status write triggers another one.
                behind.push(format!(
                    "{name} since {} ({} needed)",
                    truncate(*since),
                    format_duration(soak)
                ));
                ready_at = ready_at.max(at);
            }
        }
        if behind.is_empty() {
            verdict.passed.push(Gate::Soak);
        } else {
            verdict.block(
                Gate::Soak,
                format!("soaking: healthy in {}", behind.join(", ")),
                Some(ready_at),
            );
            ctx.wake_at(ready_at);
        }
    }

    // approvals
    if !gates.approvals.is_empty() {
        let result = tally(gates, release, &env.name, &ctx.snap.approvals);
        if result.passes() {
            verdict.passed.push(Gate::Approvals);
        } else {
            verdict.block(
                Gate::Approvals,
                format!("waiting for approval: {}", result.missing().join("; ")),
                None,
            );
        }
    }

    // schedule and freeze
    let promote_now = ctx
        .approvals_of(crate::api::Decision::PromoteNow, &release.name, &env.name)
        .first()
        .map(|a| a.spec.approver.clone());
    match ctx.time_gate(env, promote_now.is_some()) {
        TimeGate::Open { until } => {
            if let Some(until) = until {
                ctx.wake_at(until);
            }
            if !gates.schedule.is_empty() {
                verdict.passed.push(Gate::Schedule);
            }
            if !gates.freeze.is_empty() {
                verdict.passed.push(Gate::Freeze);
            }
        }
        TimeGate::Closed {
            gate,
            reason,
            opens_at,
        } => {
            verdict.block(gate, reason, opens_at);
            if let Some(at) = opens_at {
                ctx.wake_at(at);
            }
        }
    }
    verdict.promote_now_by = promote_now;

    if tests_failed {
        return verdict;
    }

    // Metrics and webhooks are asked only once the gates above pass, and tests last:
    // they cost the most and should run as close to the promotion as possible.
    if !verdict.passes() {
        if !gates.metrics.is_empty() || !gates.webhooks.is_empty() || !gates.tests.is_empty() {
            let later: Vec<&str> = [
                (Gate::Metrics, !gates.metrics.is_empty()),
                (Gate::Webhooks, !gates.webhooks.is_empty()),
                (Gate::Tests, !gates.tests.is_empty()),
            ]
            .into_iter()
            .filter_map(|(g, set)| set.then_some(g.label()))
            .collect();
            verdict.block(
                Gate::Pending,
                format!("{} run once the gates above pass", later.join(", ")),
                None,
            );
        }
        return verdict;
    }
    probe_gates(ctx, env, release, &mut verdict);
    if !verdict.passes() || gates.tests.is_empty() {
        return verdict;
    }
    if run_tests {
        test_gates(ctx, env, status, release, &mut verdict);
    } else {
        verdict.block(
            Gate::Tests,
            "waiting: the tests of a newer candidate are running".into(),
            None,
        );
    }
    verdict
}

fn probe_gates(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    release: &ReleaseView,
    verdict: &mut Verdict,
) {
    let fresh_after = ctx
        .now
        .checked_sub(jiff::SignedDuration::try_from(GATE_OBSERVATION_MAX_AGE).unwrap_or_default())
        .unwrap_or(ctx.now);
    let mut results = Vec::new();
    for metric in &env.gates.metrics {
        let id = ctx.request_metric(
            &env.name,
            ProbePurpose::Gate,
            metric,
            std::time::Duration::from_secs(60),
        );
        results.push((Gate::Metrics, metric.name.clone(), id));
    }
    for hook in &env.gates.webhooks {
        let id = ProbeId {
            environment: env.name.clone(),
            purpose: ProbePurpose::Gate,
            kind: ProbeKind::Webhook,
            name: hook.name.clone(),
            release: Some(release.name.clone()),
        };
        let payload = json!({
            "pipeline": ctx.snap.pipeline.name,
            "namespace": ctx.snap.pipeline.namespace,
            "environment": env.name,
            "release": release.name,
            "version": release.spec.version,
            "artifacts": release.spec.artifacts,
            "source": release.spec.source,
        });
        ctx.probes.push(ProbeRequest {
            id: id.clone(),
            target: ProbeTarget::Webhook {
                url: hook.url.to_string(),
                timeout: hook.timeout,
                payload,
            },
            interval: std::time::Duration::from_secs(60),
        });
        results.push((Gate::Webhooks, hook.name.clone(), id));
    }
    let mut passed = (true, true);
    for (gate, name, id) in results {
        match ctx.observation(&id) {
            Some(o) if o.at >= fresh_after && o.ok => {}
            Some(o) if o.at >= fresh_after => {
                verdict.block(gate, format!("{name}: {}", o.message), None);
                if gate == Gate::Metrics {
                    passed.0 = false
                } else {
                    passed.1 = false
                }
            }
            _ => {
                verdict.block(gate, format!("{name}: waiting for a result"), None);
                if gate == Gate::Metrics {
                    passed.0 = false
                } else {
                    passed.1 = false
                }
            }
        }
    }
    if passed.0 && !env.gates.metrics.is_empty() {
        verdict.passed.push(Gate::Metrics);
    }
    if passed.1 && !env.gates.webhooks.is_empty() {
        verdict.passed.push(Gate::Webhooks);
    }
}

/// The retry attempt of `release` in `environment`: how many retries people asked for.
pub fn attempt(ctx: &Ctx<'_>, release: &str, environment: &str) -> u32 {
    ctx.approvals_of(crate::api::Decision::Retry, release, environment)
        .len() as u32
}

fn test_gates(
    ctx: &mut Ctx<'_>,
    env: &ValidEnvironment,
    status: &mut EnvironmentStatus,
    release: &ReleaseView,
    verdict: &mut Verdict,
) {
    let attempt = attempt(ctx, &release.name, &env.name);
    // Gate tests run against the upstream environment, in its namespace and cluster.
    let tested = env
        .upstream
        .first()
        .map_or(env, |&u| &ctx.pipeline.environments[u]);
    let (cluster, namespace) = (tested.cluster.clone(), tested.namespace.clone());
    let blocked_before = verdict.blocking.len();
    for test in &env.gates.tests {
        let recorded = status
            .gate_tests
            .iter()
            .find(|r| r.release == release.name && r.test == test.name && r.attempt == attempt);
        if let Some(record) = recorded {
            if !record.passed {
                let message = record.message.as_deref().unwrap_or("the Job failed");
                verdict.block(
                    Gate::Tests,
                    format!(
                        "{} failed: {message}; it runs again only if a person retries the release",
                        test.name
                    ),
                    None,
                );
            }
            continue;
        }
        let key = JobKey {
            pipeline: &ctx.snap.pipeline.name,
            environment: &env.name,
            release: &release.name,
            purpose: JobPurpose::Gate,
            step: &test.name,
            attempt,
        };
        let name = key.name();
        let observed = ctx
            .job(cluster.as_deref(), &namespace, &name)
            .map(|j| (j.outcome, j.created, j.message.clone()));
        let finished = |passed: bool, message: Option<String>| GateTestRecord {
            release: release.name.clone(),
            test: test.name.clone(),
            attempt,
            passed,
            at: Time(ctx.now),
            message,
        };
        match observed {
            Some((JobOutcome::Succeeded, _, message)) => {
                status.gate_tests.push(finished(true, message))
            }
            Some((JobOutcome::Failed, _, message)) => {
                let message = message.unwrap_or_else(|| "the Job failed".into());
                verdict.block(
                    Gate::Tests,
                    format!("{} failed: {message}", test.name),
                    None,
                );
                status.gate_tests.push(finished(false, Some(message)));
            }
            Some((JobOutcome::Running, created, _))
                if ctx.now >= Ctx::after(created, test.timeout) =>
            {
                let message = format!("timed out after {}", format_duration(test.timeout));
                verdict.block(Gate::Tests, format!("{} {message}", test.name), None);
                status.gate_tests.push(finished(false, Some(message)));
                ctx.actions.push(Action::DeleteJob {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                    name,
                });
            }
            Some((JobOutcome::Running, created, _)) => {
                verdict.tests_running = true;
                verdict.block(
                    Gate::Tests,
                    format!("{} is running (Job {name})", test.name),
                    None,
                );
                ctx.wake_at(Ctx::after(created, test.timeout));
            }
            None => {
                ctx.create_job(&key, cluster.as_deref(), &namespace, test);
                verdict.tests_running = true;
                verdict.block(
                    Gate::Tests,
                    format!("{} is starting (Job {name})", test.name),
                    None,
                );
                ctx.wake_at(Ctx::after(ctx.now, test.timeout));
            }
        }
    }
    if verdict.blocking.len() == blocked_before {
        verdict.passed.push(Gate::Tests);
    }
}
