//! Semantic checks of a Pipeline spec, producing the checked [`ValidPipeline`].

use std::{collections::HashMap, time::Duration};

use super::{
    duration::parse_duration,
    git::validate_git,
    job::validate_job_template,
    model::*,
    names::{dns_label, dns_subdomain, http_url, secret_key},
    problems::{FieldPath, Problems},
    schedule::{CronSchedule, Freeze, Window, parse_cron, parse_time_zone},
};
use crate::api::{
    self, DEFAULT_HISTORY_LIMIT, DEFAULT_JOB_TIMEOUT, DEFAULT_PROGRESS_DEADLINE, Environment,
    Gates, JobStep, MetricCheck, PipelineSpec, WorkloadKind,
};

/// Checks a Pipeline spec. Returns the checked model when there is no error, and every
/// problem found either way.
pub fn validate_pipeline(spec: &PipelineSpec) -> (Option<ValidPipeline>, Problems) {
    let mut problems = Problems::new();
    let root = FieldPath::new("spec");
    let envs_path = root.field("environments");
    if spec.environments.is_empty() {
        problems.error(&envs_path, "a pipeline needs at least one environment");
    }
    if spec.environments.len() > api::limits::ENVIRONMENTS {
        problems.error(
            &envs_path,
            format!(
                "{} environments, at most {} allowed",
                spec.environments.len(),
                api::limits::ENVIRONMENTS
            ),
        );
    }
    let history_limit = spec.history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=100).contains(&history_limit) {
        problems.error(
            &root.field("historyLimit"),
            format!("{history_limit} is out of range: expected 1 to 100"),
        );
    }

    let index_of = unique_names(
        spec.environments.iter().map(|e| e.name.as_str()),
        &envs_path,
        "name",
        "environment",
        &mut problems,
    );
    let upstreams = resolve_upstreams(spec, &index_of, &envs_path, &mut problems);
    let topological_order = topological_order(spec, &upstreams, &envs_path, &mut problems);

    let environments: Vec<Option<ValidEnvironment>> = spec
        .environments
        .iter()
        .enumerate()
        .map(|(i, env)| {
            validate_environment(
                env,
                upstreams[i].clone(),
                &envs_path.index(i),
                &mut problems,
            )
        })
        .collect();

    if problems.has_errors() {
        return (None, problems);
    }
    let pipeline = ValidPipeline {
        suspend: spec.suspend,
        history_limit,
        environments: environments.into_iter().flatten().collect(),
        topological_order: topological_order.unwrap_or_default(),
    };
    (Some(pipeline), problems)
}

/// Reports duplicate and malformed names; returns the index of each first occurrence.
fn unique_names<'a>(
    names: impl Iterator<Item = &'a str>,
    list: &FieldPath,
    field: &str,
    what: &str,
    problems: &mut Problems,
) -> HashMap<&'a str, usize> {
    let mut seen = HashMap::new();
    for (i, name) in names.enumerate() {
        let path = list.index(i).field(field);
        problems.check(&path, dns_label(name));
        if let Some(first) = seen.insert(name, i) {
            seen.insert(name, first);
            problems.error(
                &path,
                format!(
                    "duplicate {what} name {name:?}: already used by {}",
                    list.index(first)
                ),
            );
        }
    }
    seen
}

fn resolve_upstreams(
    spec: &PipelineSpec,
    index_of: &HashMap<&str, usize>,
    envs_path: &FieldPath,
    problems: &mut Problems,
) -> Vec<Vec<usize>> {
    spec.environments
        .iter()
        .enumerate()
        .map(|(i, env)| match &env.upstream {
            None if i == 0 => vec![],
            None => vec![i - 1],
            Some(names) => {
                let path = envs_path.index(i).field("upstream");
                if names.len() > api::limits::UPSTREAMS {
                    problems.error(
                        &path,
                        format!(
                            "{} upstream environments, at most {} allowed",
                            names.len(),
                            api::limits::UPSTREAMS
                        ),
                    );
                }
                let mut resolved = Vec::new();
                for (j, name) in names.iter().enumerate() {
                    let entry = path.index(j);
                    match index_of.get(name.as_str()) {
                        Some(&k) if k == i => problems.error(
                            &entry,
                            format!("environment {name:?} cannot be its own upstream"),
                        ),
                        Some(&k) if resolved.contains(&k) => {
                            problems.error(&entry, format!("upstream {name:?} is listed twice"))
                        }
                        Some(&k) => resolved.push(k),
                        None => {
                            let known = spec.environments.iter().map(|e| e.name.as_str());
                            let hint = crate::suggest::closest(name, known.clone())
                                .map(|best| format!("did you mean {best:?}?"))
                                .unwrap_or_else(|| {
                                    format!(
                                        "expected one of {}",
                                        known.collect::<Vec<_>>().join(", ")
                                    )
                                });
                            problems.error(&entry, format!("unknown environment {name:?}: {hint}"));
                        }
                    }
                }
                resolved
            }
        })
        .collect()
}

/// Orders environments so each comes after its upstreams; reports a cycle if there is one.
fn topological_order(
    spec: &PipelineSpec,
    upstreams: &[Vec<usize>],
    envs_path: &FieldPath,
    problems: &mut Problems,
) -> Option<Vec<usize>> {
    let n = upstreams.len();
    let mut remaining: Vec<usize> = upstreams.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let done = order[next];
        next += 1;
        for (i, ups) in upstreams.iter().enumerate() {
            if ups.contains(&done) {
                remaining[i] -= 1;
                if remaining[i] == 0 {
                    order.push(i);
                }
            }
        }
    }
    if order.len() == n {
        return Some(order);
    }
    // Walk upstream links from any environment left over until one repeats: that is a cycle.
    let start = (0..n).find(|i| !order.contains(i))?;
    let mut walk = vec![start];
    let mut current = start;
    loop {
        current = *upstreams[current].iter().find(|u| !order.contains(u))?;
        if let Some(pos) = walk.iter().position(|&w| w == current) {
            // `walk` follows upstream links, so reversed it is the direction of promotion.
            // Start the cycle at the environment listed first, which is where it is reported.
            let mut cycle: Vec<usize> = walk[pos..].iter().rev().copied().collect();
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            let mut names: Vec<&str> = cycle
                .iter()
                .map(|&i| spec.environments[i].name.as_str())
                .collect();
            names.push(names[0]);
            problems.error(
                &envs_path.index(cycle[0]).field("upstream"),
                format!(
                    "upstream environments form a cycle: {}; promotions must flow one way",
                    names.join(" → ")
                ),
            );
            return None;
        }
        walk.push(current);
    }
}

fn validate_environment(
    env: &Environment,
    upstream: Vec<usize>,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<ValidEnvironment> {
    let accepts = validate_accepts(&env.accepts, &path.field("accepts"), problems);
    let declared_no_upstream = env.upstream.as_ref().is_none_or(Vec::is_empty);
    if upstream.is_empty() && declared_no_upstream && env.accepts.is_empty() {
        problems.error(
            path,
            format!("no release can ever enter environment {:?}: it has no upstream and accepts no ref; set upstream or accepts", env.name),
        );
    }
    let target_path = path.field("target");
    problems.check(
        &target_path.field("namespace"),
        dns_label(&env.target.namespace),
    );
    let targets = validate_targets(&env.target, &target_path, problems);
    let cluster = env.target.cluster.as_ref().map(|cluster| {
        let secret = target_path.field("cluster").field("secretRef");
        problems.check(
            &secret.field("name"),
            dns_subdomain(&cluster.secret_ref.name),
        );
        problems.check(&secret.field("key"), secret_key(cluster.secret_ref.key()));
        cluster.secret_ref.name.clone()
    });

    let git = env
        .target
        .git
        .as_ref()
        .map(|git| validate_git(&env.target, git, &targets, &target_path, problems));
    if env.target.git.is_some() && env.rollout.is_some() {
        problems.error(
            &path.field("rollout"),
            "canary steps need workloads Greenlight patches; with target.git, Argo CD or Flux applies the images at once: remove rollout or target.git",
        );
    }

    let pre_deploy = validate_jobs(&env.pre_deploy, &path.field("preDeploy"), problems);
    let verify = validate_verify(env.verify.as_ref(), &path.field("verify"), problems);
    let rollout = env
        .rollout
        .as_ref()
        .map(|rollout| validate_rollout(rollout, &targets, &path.field("rollout"), problems));
    let gates = validate_gates(
        env.gates.as_ref(),
        upstream.is_empty(),
        &path.field("gates"),
        problems,
    );
    let pin = env.pin.as_ref().and_then(|pin| {
        let at = path.field("pin");
        let release = problems.check(&at.field("release"), dns_subdomain(&pin.release));
        let reason = if pin.reason.trim().is_empty() {
            problems.error(
                &at.field("reason"),
                "a pin says why (an incident, a change ticket): people see it in the status",
            );
            None
        } else {
            Some(())
        };
        release.and(reason).map(|()| pin.clone())
    });
    let rollback = ValidRollback {
        automatic: env
            .rollback
            .as_ref()
            .and_then(|r| r.automatic)
            .unwrap_or(true),
        after_verification: env
            .rollback
            .as_ref()
            .and_then(|r| r.after_verification)
            .unwrap_or(false),
    };
    Some(ValidEnvironment {
        name: env.name.clone(),
        upstream,
        accepts,
        namespace: env.target.namespace.clone(),
        cluster,
        targets,
        pre_deploy,
        verify: verify?,
        rollout: rollout.map_or(Some(None), |r| r.map(Some))?,
        rollback,
        gates: gates?,
        pin: match env.pin {
            Some(_) => Some(pin?),
            None => None,
        },
        git: match git {
            Some(git) => Some(git?),
            None => None,
        },
    })
}

fn validate_accepts(
    patterns: &[String],
    path: &FieldPath,
    problems: &mut Problems,
) -> Vec<RefGlob> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(i, pattern)| problems.check(&path.index(i), RefGlob::new(pattern)))
        .collect()
}

/// Parses an optional duration field, applying `default` when it is absent.
/// Canary steps whose weights rise within 1–99, with pauses that parse and metrics that
/// are valid; every target must be a Deployment (the canary is a Deployment beside it).
fn validate_rollout(
    rollout: &api::Rollout,
    targets: &[ValidTarget],
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<ValidRollout> {
    let steps_path = path.field("steps");
    if rollout.steps.is_empty() {
        problems.error(&steps_path, "a rollout needs at least one canary step");
    }
    let mut steps = Vec::new();
    let mut previous: Option<u32> = None;
    for (i, step) in rollout.steps.iter().enumerate() {
        let entry = steps_path.index(i);
        if !(1..=99).contains(&step.weight) {
            problems.error(
                &entry.field("weight"),
                format!("weight {} is not a share between 1 and 99 percent (100% comes after the last step)", step.weight),
            );
        }
        if let Some(before) = previous.filter(|before| step.weight <= *before) {
            problems.error(
                &entry.field("weight"),
                format!("weight {} does not rise above the step before ({before}): each step gives the canary more traffic", step.weight),
            );
        }
        previous = Some(step.weight);
        let pause = duration_or(step.pause.as_deref(), "0s", &entry.field("pause"), problems);
        let metrics = validate_metrics(&step.metrics, &entry.field("metrics"), problems);
        steps.push(pause.zip(metrics).map(|(pause, metrics)| ValidCanaryStep {
            weight: step.weight,
            pause,
            metrics,
        }));
    }
    for target in targets
        .iter()
        .filter(|t| t.kind != WorkloadKind::Deployment)
    {
        problems.error(
            &steps_path,
            format!(
                "canary steps run a canary Deployment beside each target, but {} {} is not a Deployment: roll it out at once (no rollout) or move it to an environment of its own",
                target.kind, target.name
            ),
        );
    }
    let gateway_api = rollout
        .gateway_api
        .as_ref()
        .map(|route| validate_gateway_route(route, &path.field("gatewayAPI"), problems));
    let steps: Option<Vec<ValidCanaryStep>> = steps.into_iter().collect();
    let gateway_api = match gateway_api {
        None => None,
        Some(checked) => Some(checked?),
    };
    Some(ValidRollout {
        steps: steps?,
        gateway_api,
    })
}

fn validate_gateway_route(
    route: &api::GatewayApiRoute,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<ValidGatewayRoute> {
    let http_route = problems.check(&path.field("httpRoute"), dns_subdomain(&route.http_route));
    let stable = problems.check(
        &path.field("stableService"),
        dns_label(&route.stable_service),
    );
    let canary = problems.check(
        &path.field("canaryService"),
        dns_label(&route.canary_service),
    );
    if route.stable_service == route.canary_service {
        problems.error(
            &path.field("canaryService"),
            format!(
                "the canary's Service must not be the stable one ({}): each takes its own share of the route's traffic",
                route.canary_service
            ),
        );
        return None;
    }
    http_route?;
    stable?;
    canary?;
    Some(ValidGatewayRoute {
        http_route: route.http_route.clone(),
        stable_service: route.stable_service.clone(),
        canary_service: route.canary_service.clone(),
    })
}

fn duration_or(
    value: Option<&str>,
    default: &str,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Duration> {
    problems.check(path, parse_duration(value.unwrap_or(default)))
}

/// The target workloads of both lists (`deployments`, the short form, and `workloads`):
/// at least one, each (kind, name) once, with well-formed names.
fn validate_targets(
    target: &api::Target,
    path: &FieldPath,
    problems: &mut Problems,
) -> Vec<ValidTarget> {
    // With target.git, whether workloads are needed depends on its layout (super::git).
    if target.git.is_none() && target.deployments.is_empty() && target.workloads.is_empty() {
        problems.error(
            &path.field("workloads"),
            "an environment needs at least one target workload: set target.deployments or target.workloads",
        );
    }
    let entries = target
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| (path.field("deployments").index(i), d.artifact.is_some()))
        .chain(
            target
                .workloads
                .iter()
                .enumerate()
                .map(|(i, w)| (path.field("workloads").index(i), w.artifact.is_some())),
        );
    let mut seen: HashMap<(WorkloadKind, &str), FieldPath> = HashMap::new();
    let mut targets = Vec::new();
    for ((entry, artifact_set), workload) in entries.zip(target.workloads()) {
        problems.check(&entry.field("name"), dns_subdomain(workload.name));
        match seen.get(&(workload.kind, workload.name)) {
            Some(first) => problems.error(
                &entry.field("name"),
                format!(
                    "duplicate {} {:?}: already listed at {first}",
                    workload.kind, workload.name
                ),
            ),
            None => {
                seen.insert((workload.kind, workload.name), entry.clone());
            }
        }
        if let Some(container) = workload.container {
            problems.check(&entry.field("container"), dns_label(container));
        }
        let artifact_path = if artifact_set {
            entry.field("artifact")
        } else {
            entry.clone()
        };
        problems.check(
            &artifact_path,
            dns_label(workload.artifact).map_err(|e| format!("artifact name: {e}")),
        );
        targets.push(ValidTarget {
            kind: workload.kind,
            name: workload.name.to_owned(),
            container: workload.container.map(str::to_owned),
            artifact: workload.artifact.to_owned(),
        });
    }
    targets
}

/// Like [`duration_or`], but zero is an error: the field must last some time.
fn positive_duration(
    value: Option<&str>,
    default: &str,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Duration> {
    let duration = duration_or(value, default, path, problems)?;
    if duration.is_zero() {
        problems.error(
            path,
            format!(
                "{:?} is zero: expected a positive duration",
                value.unwrap_or(default)
            ),
        );
        return None;
    }
    Some(duration)
}

fn validate_jobs(steps: &[JobStep], path: &FieldPath, problems: &mut Problems) -> Vec<ValidJob> {
    unique_names(
        steps.iter().map(|s| s.name.as_str()),
        path,
        "name",
        "step",
        problems,
    );
    steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| {
            let entry = path.index(i);
            problems.extend(validate_job_template(
                &step.template,
                &entry.field("template"),
            ));
            let timeout = positive_duration(
                step.timeout.as_deref(),
                DEFAULT_JOB_TIMEOUT,
                &entry.field("timeout"),
                problems,
            )?;
            Some(ValidJob {
                name: step.name.clone(),
                template: step.template.clone(),
                timeout,
            })
        })
        .collect()
}

fn validate_verify(
    verify: Option<&api::Verify>,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<ValidVerify> {
    let empty = api::Verify {
        progress_deadline: None,
        window: None,
        http: vec![],
        metrics: vec![],
        tests: vec![],
    };
    let verify = verify.unwrap_or(&empty);
    let progress_deadline = positive_duration(
        verify.progress_deadline.as_deref(),
        DEFAULT_PROGRESS_DEADLINE,
        &path.field("progressDeadline"),
        problems,
    );
    let window = duration_or(
        verify.window.as_deref(),
        "0s",
        &path.field("window"),
        problems,
    );
    let http_path = path.field("http");
    let http: Vec<Option<ValidHttpCheck>> = verify
        .http
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let entry = http_path.index(i);
            let url = problems.check(&entry.field("url"), http_url(&check.url));
            let expect_status = check.expect_status.unwrap_or(200);
            if !(100..=599).contains(&expect_status) {
                problems.error(
                    &entry.field("expectStatus"),
                    format!("{expect_status} is not an HTTP status code: expected 100 to 599"),
                );
            }
            let interval = positive_duration(
                check.interval.as_deref(),
                "15s",
                &entry.field("interval"),
                problems,
            );
            let timeout = positive_duration(
                check.timeout.as_deref(),
                "5s",
                &entry.field("timeout"),
                problems,
            );
            let failure_threshold = check.failure_threshold.unwrap_or(3);
            if failure_threshold == 0 {
                problems.error(&entry.field("failureThreshold"), "must be at least 1");
            }
            Some(ValidHttpCheck {
                url: url?,
                expect_status,
                interval: interval?,
                timeout: timeout?,
                failure_threshold,
            })
        })
        .collect();
    let metrics = validate_metrics(&verify.metrics, &path.field("metrics"), problems);
    let tests = validate_jobs(&verify.tests, &path.field("tests"), problems);
    Some(ValidVerify {
        progress_deadline: progress_deadline?,
        window: window?,
        http: http.into_iter().collect::<Option<_>>()?,
        metrics: metrics?,
        tests,
    })
}

fn validate_metrics(
    metrics: &[MetricCheck],
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Vec<ValidMetric>> {
    unique_names(
        metrics.iter().map(|m| m.name.as_str()),
        path,
        "name",
        "metric",
        problems,
    );
    metrics
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let entry = path.index(i);
            let address = problems.check(&entry.field("prometheus").field("address"), http_url(&metric.prometheus.address));
            if metric.query.trim().is_empty() {
                problems.error(&entry.field("query"), "the query is empty: expected a PromQL expression");
            }
            match (metric.below, metric.above) {
                (None, None) => problems.error(&entry, "a metric needs a threshold: set below, above or both"),
                (Some(below), Some(above)) if above >= below => problems.error(
                    &entry.field("above"),
                    format!("above ({above}) must be less than below ({below}), or no value can ever pass"),
                ),
                _ => {}
            }
            for (field, value) in [("below", metric.below), ("above", metric.above)] {
                if value.is_some_and(|v| !v.is_finite()) {
                    problems.error(&entry.field(field), "must be a finite number");
                }
            }
            Some(ValidMetric { name: metric.name.clone(), address: address?, query: metric.query.clone(), below: metric.below, above: metric.above })
        })
        .collect()
}

fn validate_gates(
    gates: Option<&Gates>,
    direct_entry_only: bool,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<ValidGates> {
    let Some(gates) = gates else {
        return Some(ValidGates::default());
    };
    let checks_path = path.field("checks");
    let mut checks: Vec<String> = Vec::new();
    for (i, check) in gates.checks.iter().enumerate() {
        if check.is_empty() {
            problems.error(&checks_path.index(i), "empty check name");
        } else if checks.contains(check) {
            problems.error(
                &checks_path.index(i),
                format!("check {check:?} is listed twice"),
            );
        } else {
            checks.push(check.clone());
        }
    }
    let soak = gates
        .soak
        .as_deref()
        .and_then(|s| problems.check(&path.field("soak"), parse_duration(s)));
    if gates.soak.is_some() && direct_entry_only {
        problems.warning(&path.field("soak"), "this environment has no upstream, so soak never applies (it measures time Healthy upstream)");
    }
    let approvals_path = path.field("approvals");
    unique_names(
        gates.approvals.iter().map(|r| r.name.as_str()),
        &approvals_path,
        "name",
        "approval rule",
        problems,
    );
    for (i, rule) in gates.approvals.iter().enumerate() {
        let count_path = approvals_path.index(i).field("count");
        if !(1..=10).contains(&rule.count) {
            problems.error(
                &count_path,
                format!("{} is out of range: expected 1 to 10 approvers", rule.count),
            );
        }
        let users: std::collections::BTreeSet<&str> =
            rule.users.iter().map(String::as_str).collect();
        if rule.groups.is_empty() && !users.is_empty() && rule.count as usize > users.len() {
            problems.error(
                &count_path,
                format!(
                    "approval rule {:?} needs {} distinct approvers but lists only {} user{} ({}) and no groups: no release could ever be approved; lower count, list more users, or add groups",
                    rule.name,
                    rule.count,
                    users.len(),
                    if users.len() == 1 { "" } else { "s" },
                    users.into_iter().collect::<Vec<_>>().join(", "),
                ),
            );
        }
    }
    let schedule = validate_windows(gates, &path.field("schedule"), problems);
    let freeze = validate_freezes(gates, &path.field("freeze"), problems);
    let tests = validate_jobs(&gates.tests, &path.field("tests"), problems);
    let metrics = validate_metrics(&gates.metrics, &path.field("metrics"), problems);
    let webhooks_path = path.field("webhooks");
    unique_names(
        gates.webhooks.iter().map(|w| w.name.as_str()),
        &webhooks_path,
        "name",
        "webhook",
        problems,
    );
    let webhooks: Option<Vec<ValidWebhook>> = gates
        .webhooks
        .iter()
        .enumerate()
        .map(|(i, hook)| {
            let entry = webhooks_path.index(i);
            let url = problems.check(&entry.field("url"), http_url(&hook.url));
            let timeout = positive_duration(
                hook.timeout.as_deref(),
                "10s",
                &entry.field("timeout"),
                problems,
            );
            Some(ValidWebhook {
                name: hook.name.clone(),
                url: url?,
                timeout: timeout?,
            })
        })
        .collect();
    Some(ValidGates {
        checks,
        soak,
        approvals: gates.approvals.clone(),
        allow_self_approval: gates.allow_self_approval,
        schedule: schedule?,
        freeze: freeze?,
        tests,
        metrics: metrics?,
        webhooks: webhooks?,
    })
}

fn cron_schedule(
    cron: &str,
    time_zone: Option<&str>,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<CronSchedule> {
    let parsed = problems.check(&path.field("cron"), parse_cron(cron));
    let zone_name = time_zone.unwrap_or("UTC");
    let zone = problems.check(&path.field("timeZone"), parse_time_zone(zone_name));
    Some(CronSchedule {
        expression: cron.to_owned(),
        cron: parsed?,
        time_zone: zone?,
        time_zone_name: zone_name.to_owned(),
    })
}

fn validate_windows(
    gates: &Gates,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Vec<Window>> {
    gates
        .schedule
        .iter()
        .enumerate()
        .map(|(i, window)| {
            let entry = path.index(i);
            let opens = cron_schedule(&window.cron, window.time_zone.as_deref(), &entry, problems);
            let duration = positive_duration(
                Some(&window.duration),
                "",
                &entry.field("duration"),
                problems,
            );
            Some(Window {
                opens: opens?,
                duration: duration?,
            })
        })
        .collect()
}

fn validate_freezes(
    gates: &Gates,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Vec<Freeze>> {
    gates
        .freeze
        .iter()
        .enumerate()
        .map(|(i, freeze)| {
            let entry = path.index(i);
            let reason = freeze.reason.clone();
            match (&freeze.cron, &freeze.start) {
                (Some(cron), None) => {
                    if freeze.end.is_some() {
                        problems.error(&entry.field("end"), "a recurring freeze (cron) takes duration, not end");
                    }
                    let Some(duration) = &freeze.duration else {
                        problems.error(&entry.field("duration"), "a recurring freeze needs a duration, such as 63h");
                        return None;
                    };
                    let begins = cron_schedule(cron, freeze.time_zone.as_deref(), &entry, problems);
                    let duration = positive_duration(Some(duration), "", &entry.field("duration"), problems);
                    Some(Freeze::Recurring { begins: Box::new(begins?), duration: duration?, reason })
                }
                (None, Some(start)) => {
                    for (field, set) in [("duration", freeze.duration.is_some()), ("timeZone", freeze.time_zone.is_some())] {
                        if set {
                            problems.error(&entry.field(field), format!("a fixed freeze (start, end) takes no {field}"));
                        }
                    }
                    let Some(end) = &freeze.end else {
                        problems.error(&entry.field("end"), "a fixed freeze needs an end, in RFC 3339 such as 2027-01-04T00:00:00Z");
                        return None;
                    };
                    let start_at = problems.check(&entry.field("start"), parse_timestamp(start));
                    let end_at = problems.check(&entry.field("end"), parse_timestamp(end));
                    let (start_at, end_at) = (start_at?, end_at?);
                    if start_at >= end_at {
                        problems.error(&entry.field("end"), format!("end {end} is not after start {start}"));
                        return None;
                    }
                    Some(Freeze::Fixed { start: start_at, end: end_at, reason })
                }
                (Some(_), Some(_)) => {
                    problems.error(&entry, "a freeze is either recurring (cron and duration) or fixed (start and end), not both");
                    None
                }
                (None, None) => {
                    problems.error(&entry, "a freeze needs cron and duration (recurring) or start and end (fixed)");
                    None
                }
            }
        })
        .collect()
}

fn parse_timestamp(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse::<jiff::Timestamp>()
        .map_err(|_| format!("{text:?} is not an RFC 3339 time: expected a time with an offset, such as 2026-12-20T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PipelineSpec {
        serde_yaml::from_str(yaml).expect("test specs are well-formed")
    }

    fn errors(yaml: &str) -> Vec<String> {
        let (valid, problems) = validate_pipeline(&spec(yaml));
        assert_eq!(valid.is_none(), problems.has_errors());
        problems.errors().map(ToString::to_string).collect()
    }

    const THREE: &str = r#"
environments:
- {name: dev, accepts: ["feature/*"], target: {namespace: d, deployments: [{name: api}]}}
- {name: staging, target: {namespace: s, deployments: [{name: api, container: app}]}}
- {name: prod, target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}}
"#;

    #[test]
    fn an_omitted_upstream_defaults_to_the_previous_environment() {
        let (valid, problems) = validate_pipeline(&spec(THREE));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        let upstreams: Vec<Vec<usize>> = pipeline
            .environments
            .iter()
            .map(|e| e.upstream.clone())
            .collect();
        assert_eq!(upstreams, [vec![], vec![0], vec![1]]);
        assert_eq!(pipeline.topological_order, [0, 1, 2]);
        assert_eq!(pipeline.history_limit, DEFAULT_HISTORY_LIMIT);
    }

    #[test]
    fn defaults_apply_to_verification_rollback_and_artifacts() {
        let (valid, _) = validate_pipeline(&spec(THREE));
        let pipeline = valid.unwrap();
        let prod = pipeline.environment("prod").unwrap();
        assert_eq!(prod.verify.progress_deadline, Duration::from_secs(600));
        assert_eq!(prod.verify.window, Duration::ZERO);
        assert_eq!(
            prod.rollback,
            ValidRollback {
                automatic: true,
                after_verification: false
            }
        );
        let artifacts: Vec<&str> = pipeline
            .environments
            .iter()
            .map(|e| e.targets[0].artifact.as_str())
            .collect();
        assert_eq!(
            artifacts,
            ["api", "app", "backend"],
            "artifact defaults to the container, then the Deployment name"
        );
    }

    #[test]
    fn workloads_of_every_kind_are_targets_with_the_same_defaults() {
        let yaml = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, deployments: [{name: api}], workloads: [{kind: StatefulSet, name: db}, {kind: CronJob, name: nightly, container: apply}, {kind: DaemonSet, name: api}]}",
        );
        let (valid, problems) = validate_pipeline(&spec(&yaml));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        let prod: Vec<(WorkloadKind, &str, &str)> = pipeline
            .environment("prod")
            .unwrap()
            .targets
            .iter()
            .map(|t| (t.kind, t.name.as_str(), t.artifact.as_str()))
            .collect();
        assert_eq!(
            prod,
            [
                (WorkloadKind::Deployment, "api", "api"),
                (WorkloadKind::StatefulSet, "db", "db"),
                (WorkloadKind::CronJob, "nightly", "apply"),
                (WorkloadKind::DaemonSet, "api", "api"),
            ],
            "a DaemonSet may share a Deployment's name: kinds differ"
        );
    }

    #[test]
    fn a_target_cluster_names_its_secret_and_a_bad_reference_is_rejected_where_written() {
        let remote = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, deployments: [{name: api}], cluster: {secretRef: {name: prod-cluster}}}",
        );
        let (valid, problems) = validate_pipeline(&spec(&remote));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!(
            pipeline.environment("prod").unwrap().cluster.as_deref(),
            Some("prod-cluster")
        );
        assert_eq!(pipeline.environment("dev").unwrap().cluster, None);
        let bad = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, deployments: [{name: api}], cluster: {secretRef: {name: Prod_Cluster, key: \"kube config\"}}}",
        );
        assert_eq!(
            errors(&bad),
            [
                "error: spec.environments[2].target.cluster.secretRef.name: \"Prod_Cluster\" is not a valid object name: expected a Kubernetes object name: lower-case letters, digits, '-' and '.', at most 253 characters",
                "error: spec.environments[2].target.cluster.secretRef.key: \"kube config\" is not a valid Secret key: expected letters, digits, '-', '_' and '.', at most 253 characters",
            ]
        );
    }

    #[test]
    fn canary_steps_are_checked_where_written() {
        let canary = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, deployments: [{name: api}]}, rollout: {steps: [{weight: 10, pause: 5m}, {weight: 50, pause: 10m, metrics: [{name: canary-errors, prometheus: {address: \"http://prometheus:9090\"}, query: \"sum(rate(errors[1m]))\", below: 0.01}]}]}",
        );
        let (valid, problems) = validate_pipeline(&spec(&canary));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        let steps = &pipeline
            .environment("prod")
            .unwrap()
            .rollout
            .as_ref()
            .unwrap()
            .steps;
        let shape: Vec<(u32, Duration, usize)> = steps
            .iter()
            .map(|s| (s.weight, s.pause, s.metrics.len()))
            .collect();
        assert_eq!(
            shape,
            [
                (10, Duration::from_secs(300), 0),
                (50, Duration::from_secs(600), 1)
            ]
        );
        assert_eq!(pipeline.environment("staging").unwrap().rollout, None);

        let bad = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, deployments: [{name: api}], workloads: [{kind: StatefulSet, name: db}]}, rollout: {steps: [{weight: 50}, {weight: 50, pause: soon}, {weight: 100}]}",
        );
        assert_eq!(
            errors(&bad),
            [
                "error: spec.environments[2].rollout.steps[1].weight: weight 50 does not rise above the step before (50): each step gives the canary more traffic",
                "error: spec.environments[2].rollout.steps[1].pause: \"soon\" is not a duration: expected a duration such as 90s, 15m or 1h30m (units: ms, s, m, h)",
                "error: spec.environments[2].rollout.steps[2].weight: weight 100 is not a share between 1 and 99 percent (100% comes after the last step)",
                "error: spec.environments[2].rollout.steps: canary steps run a canary Deployment beside each target, but StatefulSet db is not a Deployment: roll it out at once (no rollout) or move it to an environment of its own",
            ]
        );
    }

    #[test]
    fn a_gateway_route_names_two_services_and_a_bad_one_is_rejected_where_written() {
        let with_route = |route: &str| {
            THREE.replace(
                "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
                &format!("target: {{namespace: p, deployments: [{{name: api}}]}}, rollout: {{steps: [{{weight: 10}}], gatewayAPI: {route}}}"),
            )
        };
        let good =
            with_route("{httpRoute: shop, stableService: api-stable, canaryService: api-canary}");
        let (valid, problems) = validate_pipeline(&spec(&good));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        let prod = pipeline.environment("prod").unwrap();
        assert_eq!(
            prod.rollout.as_ref().unwrap().gateway_api,
            Some(ValidGatewayRoute {
                http_route: "shop".into(),
                stable_service: "api-stable".into(),
                canary_service: "api-canary".into(),
            })
        );
        let (route, _) = crate::engine::canary::route_of(prod).unwrap();
        assert_eq!(route.to_string(), "HTTPRoute p/shop");

        let same = with_route("{httpRoute: shop, stableService: api, canaryService: api}");
        assert_eq!(
            errors(&same),
            [
                "error: spec.environments[2].rollout.gatewayAPI.canaryService: the canary's Service must not be the stable one (api): each takes its own share of the route's traffic"
            ]
        );
        let bad = with_route(
            "{httpRoute: Shop_Route, stableService: api-stable, canaryService: api.canary}",
        );
        let errors = errors(&bad);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("error: spec.environments[2].rollout.gatewayAPI.httpRoute: "),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("error: spec.environments[2].rollout.gatewayAPI.canaryService: "),
            "{errors:?}"
        );
    }

    #[test]
    fn a_pin_names_a_release_and_says_why() {
        let with_pin = |pin: &str| {
            THREE.replace(
                "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
                &format!("target: {{namespace: p, deployments: [{{name: api}}]}}, pin: {pin}"),
            )
        };
        let (valid, problems) =
            validate_pipeline(&spec(&with_pin("{release: shop-1-4-2, reason: INC-42}")));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!(
            pipeline.environment("prod").unwrap().pin,
            Some(crate::api::Pin {
                release: "shop-1-4-2".into(),
                reason: "INC-42".into()
            })
        );
        let errors = errors(&with_pin("{release: Shop_1, reason: \" \"}"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("error: spec.environments[2].pin.release: "),
            "{errors:?}"
        );
        assert_eq!(
            errors[1],
            "error: spec.environments[2].pin.reason: a pin says why (an incident, a change ticket): people see it in the status"
        );
    }

    #[test]
    fn a_workload_listed_twice_or_none_at_all_is_rejected_where_written() {
        let twice = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, deployments: [{name: api}], workloads: [{kind: Deployment, name: api}]}",
        );
        assert_eq!(
            errors(&twice),
            [
                "error: spec.environments[2].target.workloads[0].name: duplicate Deployment \"api\": already listed at spec.environments[2].target.deployments[0]"
            ]
        );
        let none = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p}",
        );
        assert_eq!(
            errors(&none),
            [
                "error: spec.environments[2].target.workloads: an environment needs at least one target workload: set target.deployments or target.workloads"
            ]
        );
        let unknown = THREE.replace(
            "target: {namespace: p, deployments: [{name: api, container: app, artifact: backend}]}",
            "target: {namespace: p, workloads: [{kind: ReplicaSet, name: api}]}",
        );
        let error = serde_yaml::from_str::<PipelineSpec>(&unknown)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "unknown variant `ReplicaSet`, expected one of `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`"
            ),
            "{error}"
        );
    }

    #[test]
    fn an_explicitly_empty_upstream_makes_an_entry_point() {
        let yaml = THREE.replace(
            "{name: staging,",
            "{name: staging, upstream: [], accepts: [\"release/*\"],",
        );
        let (valid, _) = validate_pipeline(&spec(&yaml));
        let pipeline = valid.unwrap();
        assert!(pipeline.environments[1].upstream.is_empty());
        assert!(pipeline.environments[1].accepts_ref("release/v1.4.2"));
        assert!(
            !pipeline.environments[1].accepts_ref("release/v1/extra"),
            "* stops at /"
        );
    }

    #[test]
    fn an_environment_nothing_can_enter_is_rejected() {
        let yaml = THREE.replace("{name: staging,", "{name: staging, upstream: [],");
        assert_eq!(
            errors(&yaml),
            [
                "error: spec.environments[1]: no release can ever enter environment \"staging\": it has no upstream and accepts no ref; set upstream or accepts"
            ]
        );
    }

    #[test]
    fn an_unknown_upstream_suggests_the_closest_name() {
        let yaml = THREE.replace("{name: prod,", "{name: prod, upstream: [stagin],");
        assert_eq!(
            errors(&yaml),
            [
                "error: spec.environments[2].upstream[0]: unknown environment \"stagin\": did you mean \"staging\"?"
            ]
        );
    }

    #[test]
    fn a_diamond_of_upstreams_is_a_valid_dag() {
        let yaml = r#"
environments:
- {name: build, accepts: ["main"], target: {namespace: b, deployments: [{name: api}]}}
- {name: eu, upstream: [build], target: {namespace: e, deployments: [{name: api}]}}
- {name: us, upstream: [build], target: {namespace: u, deployments: [{name: api}]}}
- {name: global, upstream: [eu, us], target: {namespace: g, deployments: [{name: api}]}}
"#;
        let (valid, problems) = validate_pipeline(&spec(yaml));
        assert!(!problems.has_errors(), "{problems:?}");
        assert_eq!(valid.unwrap().topological_order, [0, 1, 2, 3]);
    }

    #[test]
    fn a_three_environment_cycle_is_reported_once_with_its_path() {
        let yaml = r#"
environments:
- {name: a, accepts: ["x"], upstream: [c], target: {namespace: a, deployments: [{name: api}]}}
- {name: b, upstream: [a], target: {namespace: b, deployments: [{name: api}]}}
- {name: c, upstream: [b], target: {namespace: c, deployments: [{name: api}]}}
"#;
        let found = errors(yaml);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("form a cycle: a → b → c → a"),
            "{found:?}"
        );
    }

    #[test]
    fn soak_on_an_entry_point_is_a_warning() {
        let yaml = THREE.replace(
            "{name: dev, accepts:",
            "{name: dev, gates: {soak: 1h}, accepts:",
        );
        let (valid, problems) = validate_pipeline(&spec(&yaml));
        assert!(valid.is_some());
        let warnings: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "warning: spec.environments[0].gates.soak: this environment has no upstream, so soak never applies (it measures time Healthy upstream)"
            ]
        );
    }

    #[test]
    fn windows_and_freezes_are_parsed_in_their_time_zones() {
        let yaml = THREE.replace(
            "{name: prod,",
            r#"{name: prod, gates: {schedule: [{cron: "0 2 * * *", duration: 1h}], freeze: [{cron: "0 17 * * 5", timeZone: Europe/Berlin, duration: 63h, reason: weekend}, {start: "2026-12-20T00:00:00Z", end: "2027-01-04T00:00:00Z"}]},"#,
        );
        let (valid, problems) = validate_pipeline(&spec(&yaml));
        let pipeline = valid.unwrap_or_else(|| panic!("{problems:?}"));
        let gates = &pipeline.environment("prod").unwrap().gates;
        assert_eq!(gates.schedule[0].opens.time_zone_name, "UTC");
        assert_eq!(gates.schedule[0].duration, Duration::from_secs(3600));
        assert!(
            matches!(&gates.freeze[0], Freeze::Recurring { begins, duration, .. } if begins.time_zone_name == "Europe/Berlin" && *duration == Duration::from_secs(63 * 3600))
        );
        assert!(matches!(gates.freeze[1], Freeze::Fixed { .. }));
    }

    #[test]
    fn zero_length_windows_and_inverted_thresholds_are_rejected() {
        let yaml = THREE.replace(
            "{name: prod,",
            r#"{name: prod, gates: {schedule: [{cron: "0 2 * * *", duration: 0s}], metrics: [{name: err, prometheus: {address: "http://prom:9090"}, query: "up", below: 0.1, above: 0.5}]},"#,
        );
        assert_eq!(
            errors(&yaml),
            [
                "error: spec.environments[2].gates.schedule[0].duration: \"0s\" is zero: expected a positive duration",
                "error: spec.environments[2].gates.metrics[0].above: above (0.5) must be less than below (0.1), or no value can ever pass",
            ]
        );
    }

    #[test]
    fn probes_need_http_urls() {
        let yaml = THREE.replace("{name: prod,", r#"{name: prod, verify: {http: [{url: "api.shop/healthz"}]}, gates: {webhooks: [{name: cab, url: "ftp://cab"}]},"#);
        let found = errors(&yaml);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with(
                "error: spec.environments[2].verify.http[0].url: \"api.shop/healthz\" is not a URL"
            ),
            "{found:?}"
        );
        assert!(found[1].starts_with("error: spec.environments[2].gates.webhooks[0].url: \"ftp://cab\" must use http:// or https://"), "{found:?}");
    }
}
