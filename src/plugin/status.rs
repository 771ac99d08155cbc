//! `kubectl greenlight status`: one table row per environment (what it runs, how it is,
//! what waits to enter it), then the details that do not fit a cell. A pure function of
//! the Pipeline, its Releases, the time and the terminal width.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::{
    EnvironmentPhase, EnvironmentStatus, Pipeline, PromotionStage, Release,
    ReleaseEnvironmentState, ReleaseEnvironmentStatus, Target, WorkloadKind,
};

const HEADERS: [&str; 4] = ["NAME", "VERSION", "HEALTH", "WAITING"];
/// Narrowest each column gets before the line itself is cut.
const MIN_WIDTHS: [usize; 4] = [4, 7, 7, 7];
/// Which column gives up room first when the table is too wide: WAITING, then HEALTH,
/// VERSION and NAME.
const SHRINK_ORDER: [usize; 4] = [3, 2, 1, 0];
const GAP: &str = "  ";

/// The newest release waiting to enter an environment, and what blocks it.
struct Waiting<'a> {
    release: &'a Release,
    state: &'a ReleaseEnvironmentStatus,
}

/// The whole `status` output: a header, the table and the details, every line at most
/// `width` characters.
pub fn render(pipeline: &Pipeline, releases: &[Release], now: Timestamp, width: usize) -> String {
    let name = pipeline.metadata.name.as_deref().unwrap_or_default();
    let namespace = pipeline.metadata.namespace.as_deref().unwrap_or_default();
    let releases: Vec<&Release> = releases
        .iter()
        .filter(|r| r.spec.pipeline == name)
        .collect();
    let status = pipeline.status.clone().unwrap_or_default();
    let mut lines = Vec::new();

    let mut title = format!("Pipeline {namespace}/{name}");
    if pipeline.spec.suspend {
        title.push_str(": suspended (spec.suspend), no new promotion starts");
    }
    lines.push(title);
    if pipeline.status.is_none() {
        lines.push(
            "no status yet: the Greenlight controller has not reconciled this Pipeline".into(),
        );
    }
    for condition in &status.conditions {
        let shown = match condition.type_.as_str() {
            "Ready" => condition.status != "True",
            "Degraded" => condition.status == "True",
            _ => false,
        };
        if shown {
            lines.push(format!(
                "{}={} ({}): {}",
                condition.type_, condition.status, condition.reason, condition.message
            ));
        }
    }
    lines.push(String::new());

    // Spec order first, then environments only the status still knows.
    let mut names: Vec<&str> = pipeline
        .spec
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for env in &status.environments {
        if !names.contains(&env.name.as_str()) {
            names.push(&env.name);
        }
    }
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for env_name in names {
        let env = status.environments.iter().find(|e| e.name == env_name);
        let waiting = newest_waiting(&releases, env_name);
        rows.push([
            env_name.to_owned(),
            version_cell(env),
            health_cell(env),
            waiting_cell(env, waiting.as_ref(), now),
        ]);
        let target = pipeline
            .spec
            .environments
            .iter()
            .find(|e| e.name == env_name)
            .map(|e| &e.target);
        details.extend(target.and_then(|t| runs_line(env_name, t)));
        details.extend(detail_lines(
            env_name,
            env,
            waiting.as_ref(),
            &releases,
            now,
        ));
    }
    lines.extend(table(&rows, width));
    if !details.is_empty() {
        lines.push(String::new());
        lines.extend(details);
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&cut(&line, width));
        out.push('\n');
    }
    out
}

fn newest_waiting<'a>(releases: &[&'a Release], environment: &str) -> Option<Waiting<'a>> {
    releases
        .iter()
        .filter_map(|release| {
            let state =
                release.status.as_ref()?.environments.iter().find(|e| {
                    e.name == environment && e.state == ReleaseEnvironmentState::Waiting
                })?;
            Some(Waiting { release, state })
        })
        .max_by(|a, b| {
            let key = |w: &Waiting<'_>| {
                (
                    w.release.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    w.release.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        })
}

fn version_cell(env: Option<&EnvironmentStatus>) -> String {
    match env {
        None => "-".into(),
        Some(env) => env
            .current
            .as_ref()
            .map_or_else(|| "baseline".into(), |c| c.version.clone()),
    }
}

/// `healthy`, `unhealthy`, `degraded`, or the promotion in flight: `Deploying 1.4.3`,
/// `Verifying 1.4.3`, `unhealthy, RollingBack to 1.4.1`.
fn health_cell(env: Option<&EnvironmentStatus>) -> String {
    let Some(env) = env else {
        return "-".into();
    };
    let health = match env.healthy {
        Some(true) => "healthy",
        Some(false) => "unhealthy",
        None => "",
    };
    let target = env
        .promotion
        .as_ref()
        .map(|p| p.version.clone().unwrap_or_else(|| "baseline".into()));
    let canary = env
        .promotion
        .as_ref()
        .filter(|p| p.stage == PromotionStage::Canary)
        .and_then(|p| Some((p.canary_weight?, p.step + 1)));
    let phase = match (env.phase, target) {
        (Some(EnvironmentPhase::Degraded), _) => "degraded".to_owned(),
        (Some(EnvironmentPhase::Deploying), Some(v)) if let Some((weight, step)) = canary => {
            format!("Canary {v} {weight}% (step {step})")
        }
        (Some(EnvironmentPhase::Deploying), Some(v)) => format!("Deploying {v}"),
        (Some(EnvironmentPhase::Deploying), None) => "Deploying".into(),
        (Some(EnvironmentPhase::Verifying), Some(v)) => format!("Verifying {v}"),
        (Some(EnvironmentPhase::Verifying), None) => "Verifying".into(),
        (Some(EnvironmentPhase::RollingBack), Some(v)) => format!("RollingBack to {v}"),
        (Some(EnvironmentPhase::RollingBack), None) => "RollingBack".into(),
        (Some(EnvironmentPhase::Idle) | None, _) => String::new(),
    };
    let cell = [health, phase.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    if cell.is_empty() {
        "unknown".into()
    } else {
        cell
    }
}

/// `1.4.3: approvals, schedule (opens in 14h)`, else the environment's `next` sentence.
fn waiting_cell(
    env: Option<&EnvironmentStatus>,
    waiting: Option<&Waiting<'_>>,
    now: Timestamp,
) -> String {
    if let Some(waiting) = waiting {
        let gates: Vec<String> = waiting
            .state
            .blocked_by
            .iter()
            .map(|gate| match &gate.next_open {
                Some(at) => format!("{} (opens {})", gate.gate, relative(now, at.0)),
                None => gate.gate.clone(),
            })
            .collect();
        let version = &waiting.release.spec.version;
        return match (gates.is_empty(), &waiting.state.message) {
            (false, _) => format!("{version}: {}", gates.join(", ")),
            (true, Some(message)) => format!("{version}: {message}"),
            (true, None) => version.clone(),
        };
    }
    env.and_then(|e| e.next.clone())
        .unwrap_or_else(|| "-".into())
}

/// Lines under the table: each gate that blocks with its reason and when it opens, what
/// an environment in flight is doing, and the releases that failed there.
fn detail_lines(
    env_name: &str,
    env: Option<&EnvironmentStatus>,
    waiting: Option<&Waiting<'_>>,
    releases: &[&Release],
    now: Timestamp,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(env) = env {
        let busy = !matches!(env.phase, None | Some(EnvironmentPhase::Idle));
        if let (true, Some(message)) = (busy, &env.message) {
            lines.push(format!("{env_name}: {message}"));
        }
        for mark in &env.failed {
            let version = releases
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(mark.release.as_str()))
                .map(|r| format!("{} ", r.spec.version))
                .unwrap_or_default();
            lines.push(format!(
                "{env_name}: {version}({}) failed {}: {}",
                mark.release,
                clock(mark.at.0),
                mark.reason
            ));
        }
    }
    match waiting {
        Some(waiting) if !waiting.state.blocked_by.is_empty() => {
            lines.push(format!(
                "{env_name}: {} ({}) waits for:",
                waiting.release.spec.version,
                waiting.release.metadata.name.as_deref().unwrap_or_default()
            ));
            for gate in &waiting.state.blocked_by {
                let opens = gate
                    .next_open
                    .as_ref()
                    .map(|at| format!("; opens {} ({})", clock(at.0), relative(now, at.0)))
                    .unwrap_or_default();
                lines.push(format!("  {}: {}{opens}", gate.gate, gate.reason));
            }
        }
        Some(_) => {}
        None => {
            if let Some(next) = env.and_then(|e| e.next.as_ref()) {
                lines.push(format!("{env_name}: {next}"));
            }
        }
    }
    lines
}

/// What an environment runs, when that is not only Deployments of the controller's own
/// cluster: `staging runs StatefulSet shop-staging/worker, Deployment shop-staging/api`,
/// `prod runs Deployment shop-prod/api in cluster prod-cluster`.
fn runs_line(env_name: &str, target: &Target) -> Option<String> {
    let workloads: Vec<_> = target.workloads().collect();
    let cluster = target.cluster.as_ref().map(|c| &c.secret_ref.name);
    if cluster.is_none() && workloads.iter().all(|w| w.kind == WorkloadKind::Deployment) {
        return None;
    }
    let listed: Vec<String> = workloads
        .iter()
        .map(|w| format!("{} {}/{}", w.kind, target.namespace, w.name))
        .collect();
    let place = cluster
        .map(|c| format!(" in cluster {c}"))
        .unwrap_or_default();
    Some(format!("{env_name} runs {}{place}", listed.join(", ")))
}

/// `Sat 2026-11-21 12:04 UTC`.
fn clock(at: Timestamp) -> String {
    at.strftime("%a %Y-%m-%d %H:%M UTC").to_string()
}

/// `in 1h58m`, `now`, or `2h ago`, to the minute above a minute.
fn relative(now: Timestamp, at: Timestamp) -> String {
    let seconds = at.as_second() - now.as_second();
    let magnitude = seconds.unsigned_abs();
    if magnitude == 0 {
        return "now".into();
    }
    let rounded = if magnitude >= 60 {
        magnitude.div_ceil(60) * 60
    } else {
        magnitude
    };
    let span = crate::validation::format_duration(Duration::from_secs(rounded));
    if seconds > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// The rows under [`HEADERS`], columns narrowed to fit `width` and cells cut with `…`.
fn table(rows: &[[String; 4]], width: usize) -> Vec<String> {
    let clean = |cell: &str| cell.replace(['\n', '\r', '\t'], " ");
    let rows: Vec<[String; 4]> = rows.iter().map(|r| r.clone().map(|c| clean(&c))).collect();
    let mut widths: [usize; 4] = std::array::from_fn(|i| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([HEADERS[i].len()])
            .max()
            .unwrap_or(0)
    });
    let room = width.saturating_sub(GAP.len() * (HEADERS.len() - 1));
    for column in SHRINK_ORDER {
        let total: usize = widths.iter().sum();
        if total <= room {
            break;
        }
        let spare = widths[column].saturating_sub(MIN_WIDTHS[column]);
        widths[column] -= spare.min(total - room);
    }
    let header = HEADERS.map(str::to_owned);
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    let cell = cut(cell, w);
                    if i + 1 == row.len() {
                        cell
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            cells.join(GAP).trim_end().to_owned()
        })
        .collect()
}

/// `text` in at most `width` characters, ending in `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::{
        super::fixtures::{self, at},
        *,
    };
    use crate::api::{
        BlockingGate, PipelineSpec, PipelineStatus, PromotionKind, PromotionStage, PromotionState,
        ReleaseMark, ReleaseRef, ReleaseStatus,
    };

    const NOW: &str = "2026-11-21T10:04:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn release(
        name: &str,
        version: &str,
        created: &str,
        prod: Option<ReleaseEnvironmentStatus>,
    ) -> Release {
        let mut release = fixtures::release(name, version, "shop");
        release.metadata.creation_timestamp = Some(at(created));
        release.status = prod.map(|prod| ReleaseStatus {
            environments: vec![prod],
            ..ReleaseStatus::default()
        });
        release
    }

    fn waiting_in_prod(gates: Vec<BlockingGate>) -> ReleaseEnvironmentStatus {
        ReleaseEnvironmentStatus {
            name: "prod".into(),
            state: ReleaseEnvironmentState::Waiting,
            since: Some(at("2026-11-21T10:04:00Z")),
            message: None,
            blocked_by: gates,
        }
    }

    fn gate(name: &str, reason: &str, opens: Option<&str>) -> BlockingGate {
        BlockingGate {
            gate: name.into(),
            reason: reason.into(),
            next_open: opens.map(at),
        }
    }

    fn pipeline() -> Pipeline {
        let spec: PipelineSpec = serde_json::from_value(serde_json::json!({
            "environments": [
                {"name": "dev", "target": {"namespace": "shop-dev", "deployments": [{"name": "api"}]}},
                {"name": "staging", "target": {"namespace": "shop-staging", "deployments": [{"name": "api"}]}},
                {"name": "prod", "target": {"namespace": "shop-prod", "deployments": [{"name": "api"}]}},
            ]
        }))
        .unwrap();
        let mut pipeline = Pipeline::new("shop", spec);
        pipeline.metadata.namespace = Some("shop".into());
        let current = |release: &str, version: &str| ReleaseRef {
            release: release.into(),
            version: version.into(),
            since: Some(at("2026-11-21T09:00:00Z")),
        };
        pipeline.status = Some(PipelineStatus {
            environments: vec![
                EnvironmentStatus {
                    name: "dev".into(),
                    phase: Some(EnvironmentPhase::Idle),
                    current: Some(current("shop-1-4-3", "1.4.3")),
                    healthy: Some(true),
                    ..EnvironmentStatus::default()
                },
                EnvironmentStatus {
                    name: "staging".into(),
                    phase: Some(EnvironmentPhase::Verifying),
                    message: Some("verifying 1.4.3 in staging for 5m".into()),
                    current: Some(current("shop-1-4-3", "1.4.3")),
                    promotion: Some(PromotionState {
                        kind: PromotionKind::Deploy,
                        release: Some("shop-1-4-3".into()),
                        version: Some("1.4.3".into()),
                        stage: PromotionStage::Verify,
                        step: 0,
                        started_at: at("2026-11-21T10:00:00Z"),
                        stage_started_at: at("2026-11-21T10:01:00Z"),
                        rollout_observed_at: None,
                        unobserved_since: None,
                        canary_ready_at: None,
                        canary_weight: None,
                        attempt: 0,
                        requested_by: None,
                        failed_release: None,
                        trigger: None,
                        reason: None,
                    }),
                    ..EnvironmentStatus::default()
                },
                EnvironmentStatus {
                    name: "prod".into(),
                    phase: Some(EnvironmentPhase::Idle),
                    healthy: Some(true),
                    failed: vec![ReleaseMark {
                        release: "shop-1-4-1".into(),
                        at: at("2026-11-20T02:20:00Z"),
                        reason: "verification failed: http check returned 503".into(),
                    }],
                    next: Some("1.4.2 waits for approvals: …".into()),
                    ..EnvironmentStatus::default()
                },
            ],
            ..PipelineStatus::default()
        });
        pipeline
    }

    fn releases() -> Vec<Release> {
        vec![
            release("shop-1-4-1", "1.4.1", "2026-11-19T09:00:00Z", None),
            release(
                "shop-1-4-0",
                "1.4.0",
                "2026-11-18T09:00:00Z",
                Some(waiting_in_prod(vec![gate("approvals", "old", None)])),
            ),
            release(
                "shop-1-4-2",
                "1.4.2",
                "2026-11-20T09:00:00Z",
                Some(waiting_in_prod(vec![
                    gate(
                        "approvals",
                        "waiting for approval: release-managers needs 2 distinct approvers (none yet)",
                        None,
                    ),
                    gate(
                        "schedule",
                        "outside the promotion windows",
                        Some("2026-11-22T02:00:00Z"),
                    ),
                ])),
            ),
        ]
    }

    #[test]
    fn the_table_shows_version_health_and_the_newest_waiting_candidate() {
        let out = render(&pipeline(), &releases(), now(), 120);
        let expected = "\
Pipeline shop/shop

NAME     VERSION   HEALTH           WAITING
dev      1.4.3     healthy          -
staging  1.4.3     Verifying 1.4.3  -
prod     baseline  healthy          1.4.2: approvals, schedule (opens in 15h56m)

staging: verifying 1.4.3 in staging for 5m
prod: 1.4.1 (shop-1-4-1) failed Fri 2026-11-20 02:20 UTC: verification failed: http check returned 503
prod: 1.4.2 (shop-1-4-2) waits for:
  approvals: waiting for approval: release-managers needs 2 distinct approvers (none yet)
  schedule: outside the promotion windows; opens Sun 2026-11-22 02:00 UTC (in 15h56m)
";
        assert_eq!(out, expected);
    }

    #[test]
    fn an_environment_of_other_kinds_than_deployments_says_what_it_runs() {
        let mut pipeline = pipeline();
        pipeline.spec.environments[1].target.workloads = vec![crate::api::Workload {
            kind: WorkloadKind::StatefulSet,
            name: "worker".into(),
            container: None,
            artifact: Some("api".into()),
        }];
        let out = render(&pipeline, &releases(), now(), 120);
        let lines: Vec<&str> = out.lines().collect();
        let runs = lines
            .iter()
            .position(|l| {
                *l == "staging runs Deployment shop-staging/api, StatefulSet shop-staging/worker"
            })
            .unwrap_or_else(|| panic!("no line says what staging runs:\n{out}"));
        assert_eq!(
            lines[runs + 1],
            "staging: verifying 1.4.3 in staging for 5m",
            "it comes first among staging's details:\n{out}"
        );
        assert!(
            !out.contains("dev runs") && !out.contains("prod runs"),
            "Deployments only is the default, not shown:\n{out}"
        );
    }

    #[test]
    fn an_environment_in_another_cluster_names_it() {
        let mut pipeline = pipeline();
        pipeline.spec.environments[2].target.cluster = Some(crate::api::TargetCluster {
            secret_ref: crate::api::SecretKeyRef {
                name: "prod-cluster".into(),
                key: None,
            },
        });
        let out = render(&pipeline, &releases(), now(), 120);
        assert!(
            out.lines()
                .any(|l| l == "prod runs Deployment shop-prod/api in cluster prod-cluster"),
            "{out}"
        );
    }

    #[test]
    fn every_line_fits_the_width_and_cut_cells_end_with_an_ellipsis() {
        let out = render(&pipeline(), &releases(), now(), 50);
        for line in out.lines() {
            assert!(
                line.chars().count() <= 50,
                "{} characters: {line:?}",
                line.chars().count()
            );
        }
        // WAITING gives up its room first.
        let prod = out.lines().find(|l| l.starts_with("prod ")).unwrap();
        assert_eq!(prod, "prod     baseline  healthy          1.4.2: approv…");
        let staging = out.lines().find(|l| l.starts_with("staging ")).unwrap();
        assert_eq!(staging, "staging  1.4.3     Verifying 1.4.3  -");
        // Then HEALTH.
        let out = render(&pipeline(), &releases(), now(), 36);
        assert!(out.lines().all(|l| l.chars().count() <= 36), "{out}");
        let staging = out.lines().find(|l| l.starts_with("staging ")).unwrap();
        assert_eq!(staging, "staging  1.4.3     Verifyi…  -");
        let prod = out.lines().find(|l| l.starts_with("prod ")).unwrap();
        assert_eq!(prod, "prod     baseline  healthy   1.4.2:…");
    }

    #[test]
    fn a_very_narrow_terminal_still_gets_lines_no_wider_than_it() {
        let out = render(&pipeline(), &releases(), now(), 12);
        assert!(out.lines().all(|l| l.chars().count() <= 12), "{out}");
        assert!(out.lines().any(|l| l.starts_with("NAME")));
    }

    #[test]
    fn a_pipeline_that_is_not_ready_says_why() {
        let mut pipeline = pipeline();
        pipeline.spec.suspend = true;
        let condition = |type_: &str, status: &str, reason: &str, message: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: at(NOW),
            observed_generation: None,
        };
        pipeline.status.as_mut().unwrap().conditions = vec![
            condition(
                "Ready",
                "False",
                "EnvironmentDegraded",
                "prod is degraded: the rollback failed",
            ),
            condition("Progressing", "True", "Deploying", "deploying"),
            condition(
                "Degraded",
                "True",
                "RollbackFailed",
                "prod: rollback to 1.4.0 did not become healthy",
            ),
        ];
        let out = render(&pipeline, &releases(), now(), 200);
        let head: Vec<&str> = out.lines().take(4).collect();
        assert_eq!(
            head,
            [
                "Pipeline shop/shop: suspended (spec.suspend), no new promotion starts",
                "Ready=False (EnvironmentDegraded): prod is degraded: the rollback failed",
                "Degraded=True (RollbackFailed): prod: rollback to 1.4.0 did not become healthy",
                "",
            ]
        );
    }

    #[test]
    fn a_ready_pipeline_shows_no_condition_line() {
        let mut pipeline = pipeline();
        pipeline.status.as_mut().unwrap().conditions = vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Idle".into(),
            message: "all good".into(),
            last_transition_time: at(NOW),
            observed_generation: None,
        }];
        let out = render(&pipeline, &releases(), now(), 200);
        assert!(!out.contains("all good"), "{out}");
    }

    #[test]
    fn without_release_statuses_the_environments_next_sentence_is_shown() {
        let out = render(&pipeline(), &[], now(), 200);
        let prod = out.lines().find(|l| l.starts_with("prod ")).unwrap();
        assert!(prod.ends_with("1.4.2 waits for approvals: …"), "{prod:?}");
    }

    #[test]
    fn a_pipeline_without_status_lists_its_environments_and_says_so() {
        let mut pipeline = pipeline();
        pipeline.status = None;
        let out = render(&pipeline, &[], now(), 100);
        assert!(out.contains("no status yet"), "{out}");
        assert!(out.contains("\nprod     -        -       -\n"), "{out}");
    }

    #[test]
    fn rolling_back_and_degraded_are_shown_in_the_health_column() {
        let mut env = EnvironmentStatus {
            name: "prod".into(),
            phase: Some(EnvironmentPhase::RollingBack),
            healthy: Some(false),
            promotion: Some(PromotionState {
                kind: PromotionKind::Rollback,
                release: None,
                version: None,
                stage: PromotionStage::Rollout,
                step: 0,
                started_at: at(NOW),
                stage_started_at: at(NOW),
                rollout_observed_at: None,
                unobserved_since: None,
                canary_ready_at: None,
                canary_weight: None,
                attempt: 0,
                requested_by: None,
                failed_release: Some("shop-1-4-2".into()),
                trigger: Some("verification".into()),
                reason: None,
            }),
            ..EnvironmentStatus::default()
        };
        assert_eq!(
            health_cell(Some(&env)),
            "unhealthy, RollingBack to baseline"
        );
        let rollback = env.promotion.clone();
        env.phase = Some(EnvironmentPhase::Deploying);
        env.healthy = Some(true);
        env.promotion = Some(PromotionState {
            kind: PromotionKind::Deploy,
            release: Some("shop-1-4-3".into()),
            version: Some("1.4.3".into()),
            stage: PromotionStage::Canary,
            step: 1,
            canary_weight: Some(50),
            ..rollback.clone().unwrap()
        });
        assert_eq!(
            health_cell(Some(&env)),
            "healthy, Canary 1.4.3 50% (step 2)"
        );
        env.phase = Some(EnvironmentPhase::RollingBack);
        env.healthy = Some(false);
        env.promotion = rollback;
        env.phase = Some(EnvironmentPhase::Degraded);
        env.promotion = None;
        assert_eq!(health_cell(Some(&env)), "unhealthy, degraded");
        env.healthy = None;
        env.phase = None;
        assert_eq!(health_cell(Some(&env)), "unknown");
    }

    #[test]
    fn times_are_relative_to_now_and_rounded_up_to_the_minute() {
        let now = now();
        let later = |s: i64| now + jiff::SignedDuration::from_secs(s);
        assert_eq!(relative(now, later(0)), "now");
        assert_eq!(relative(now, later(42)), "in 42s");
        assert_eq!(relative(now, later(61)), "in 2m");
        assert_eq!(relative(now, later(7080)), "in 1h58m");
        assert_eq!(relative(now, later(-7200)), "2h ago");
    }
}
