//! Property tests: random pipelines, random arrivals of releases and approvals, injected
//! failures, API errors and controller crashes. Every invariant of SPEC.md (I1 to I6) is
//! checked on every reconcile, from the outside, without reusing the engine's gate code.
//!
//! `PROPTEST_CASES` raises the number of cases (default 1000 per property).

use std::collections::{BTreeMap, BTreeSet};

use greenlight::{
    api::{
        Approval, ApprovalSpec, Decision as Verdict, EnvironmentPhase, Pipeline, PromotionKind,
        PromotionStage, Release,
    },
    engine::{Action, Regarding, Snapshot, WorkloadKind},
    sim::{Chaos, Options, Simulation, Step},
};
use jiff::{SignedDuration, Timestamp};
use proptest::{prelude::*, strategy::ValueTree};

const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "dave"];
const HOURS: i64 = 30;

#[derive(Clone, Debug)]
struct EnvGen {
    upstream: Vec<usize>,
    accepts_hotfix: bool,
    checks: bool,
    soak_min: i64,
    approvals: u32,
    allow_self: bool,
    window_every: Option<u32>,
    freeze: Option<(i64, i64)>,
    automatic: bool,
    after_verification: bool,
    window_min: i64,
    deadline_min: i64,
    pre_deploy: bool,
    verify_test: bool,
    gate_test: bool,
    /// Canary steps before the rollout (its target is a Deployment).
    canary: bool,
    /// Its canary's share is of an HTTPRoute's traffic (`rollout.gatewayAPI`).
    by_route: bool,
    /// The kind of its one target workload.
    kind: WorkloadKind,
    /// GitOps mode (`target.git`): 0 none; its images committed to a repository that
    /// 1 an Argo CD Application, 2 a Flux Kustomization, 3 something that only the
    /// workload shows applies.
    git: u8,
}

#[derive(Clone, Debug)]
struct ReleaseGen {
    arrive_min: i64,
    hotfix: bool,
    checks_pass: bool,
}

#[derive(Clone, Debug)]
struct ApprovalGen {
    release: usize,
    environment: usize,
    person: usize,
    decision: Verdict,
    at_min: i64,
}

#[derive(Clone, Debug)]
struct Scenario {
    envs: Vec<EnvGen>,
    releases: Vec<ReleaseGen>,
    approvals: Vec<ApprovalGen>,
    failures: Vec<(usize, usize, &'static str)>,
}

fn env_gen(index: usize) -> impl Strategy<Value = EnvGen> {
    let upstream = if index == 0 {
        Just(vec![]).boxed()
    } else {
        proptest::sample::subsequence((0..index).collect::<Vec<_>>(), 1..=index.min(2)).boxed()
    };
    let timing = (
        prop_oneof![Just(0i64), 5i64..40],
        prop_oneof![3 => Just(None), 1 => prop_oneof![Just(Some(2u32)), Just(Some(3)), Just(Some(6))]],
        prop_oneof![3 => Just(None), 1 => (0i64..1200, 30i64..600).prop_map(Some)],
        0i64..6,
        2i64..6,
    );
    let behaviour = (
        any::<bool>(),
        any::<bool>(),
        0u32..=2,
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.85),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.3),
        any::<bool>(),
    );
    let kind = (
        proptest::sample::select(WorkloadKind::ALL),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
    );
    (upstream, timing, behaviour, kind).prop_map(
        |(
            upstream,
            (soak_min, window_every, freeze, window_min, deadline_min),
            (
                accepts_hotfix,
                checks,
                approvals,
                allow_self,
                automatic,
                after_verification,
                pre_deploy,
                verify_test,
                gate_test,
                canary,
                by_route,
            ),
            (kind, git),
        )| EnvGen {
            upstream,
            accepts_hotfix,
            checks,
            soak_min,
            approvals,
            allow_self,
            window_every,
            freeze,
            automatic,
            after_verification,
            window_min,
            deadline_min,
            pre_deploy,
            verify_test,
            gate_test,
            canary: canary && kind == WorkloadKind::Deployment && git == 0,
            by_route,
            kind,
            git,
        },
    )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2usize..=4)
        .prop_flat_map(|n| {
            let envs: Vec<_> = (0..n).map(env_gen).collect();
            let releases = proptest::collection::vec((0i64..900, proptest::bool::weighted(0.2), proptest::bool::weighted(0.85)).prop_map(|(arrive_min, hotfix, checks_pass)| ReleaseGen { arrive_min, hotfix, checks_pass }), 1..6);
            (Just(n), envs, releases)
        })
        .prop_flat_map(|(n, envs, releases)| {
            let r = releases.len();
            let decision = prop_oneof![8 => Just(Verdict::Approve), 1 => Just(Verdict::Reject), 1 => Just(Verdict::PromoteNow), 1 => Just(Verdict::Retry)];
            let approvals = proptest::collection::vec((0..r, 0..n, 0..PEOPLE.len(), decision, 0i64..1200).prop_map(|(release, environment, person, decision, at_min)| ApprovalGen { release, environment, person, decision, at_min }), 0..14);
            let mode = prop_oneof![Just("health"), Just("rollout"), Just("test"), Just("pre-deploy"), Just("metric")];
            let failures = proptest::collection::vec((0..r, 0..n, mode), 0..4);
            // Sometimes nothing at all can roll out in one environment, so that rollbacks fail too.
            let broken = prop_oneof![6 => Just(None), 1 => (0..n).prop_map(Some)];
            let failures = (failures, broken).prop_map(move |(mut f, broken)| {
                if let Some(e) = broken {
                    f.push((usize::MAX, e, "rollout"));
                }
                f
            });
            (Just(envs), Just(releases), approvals, failures)
        })
        .prop_map(|(envs, releases, approvals, failures)| Scenario { envs, releases, approvals, failures })
}

fn t0() -> Timestamp {
    "2026-11-21T00:00:00Z".parse().unwrap()
}

fn env_name(i: usize) -> String {
    format!("e{i}")
}

fn release_name(i: usize) -> String {
    format!("r{i}")
}

fn job() -> &'static str {
    "{template: {spec: {restartPolicy: Never, containers: [{name: t, image: test}]}}}"
}

fn pipeline_yaml(s: &Scenario) -> String {
    let mut out = String::from(
        "apiVersion: greenlight.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p, namespace: ns}\nspec:\n  environments:\n",
    );
    for (i, e) in s.envs.iter().enumerate() {
        let mut accepts = Vec::new();
        if i == 0 {
            accepts.push("\"main\"".to_owned());
        }
        if e.accepts_hotfix {
            accepts.push("\"hotfix/*\"".to_owned());
        }
        let upstream: Vec<String> = e.upstream.iter().map(|&u| env_name(u)).collect();
        out += &format!(
            "  - name: {}\n    upstream: [{}]\n    accepts: [{}]\n",
            env_name(i),
            upstream.join(", "),
            accepts.join(", ")
        );
        let git = match e.git {
            0 => String::new(),
            applier => {
                let applier = match applier {
                    1 => format!(", argoCDApplication: {{name: e{i}, namespace: argocd}}"),
                    2 => format!(", fluxKustomization: {{name: e{i}, namespace: flux-system}}"),
                    _ => String::new(),
                };
                format!(
                    ", git: {{repository: \"https://git.example.com/envs.git\", branch: main, path: e{i}, kustomize: {{images: [{{artifact: app, name: app}}]}}{applier}}}"
                )
            }
        };
        out += &match e.kind {
            WorkloadKind::Deployment => {
                format!("    target: {{namespace: ns-{i}, deployments: [{{name: app}}]{git}}}\n")
            }
            kind => format!(
                "    target: {{namespace: ns-{i}, workloads: [{{kind: {kind}, name: app}}]{git}}}\n"
            ),
        };
        out += &format!(
            "    rollback: {{automatic: {}, afterVerification: {}}}\n",
            e.automatic, e.after_verification
        );
        out += &format!(
            "    verify: {{progressDeadline: {}m, window: {}m, http: [{{url: \"http://app.ns-{i}/healthz\", interval: 15s, failureThreshold: 2}}], metrics: [{{name: errors, prometheus: {{address: \"http://prom:9090\"}}, query: up, below: 0.05}}]",
            e.deadline_min, e.window_min
        );
        if e.verify_test {
            out += &format!(
                ", tests: [{{name: smoke, timeout: 10m, template: {}}}]}}\n",
                job()
            );
        } else {
            out += "}\n";
        }
        if e.canary {
            let route = if e.by_route {
                ", gatewayAPI: {httpRoute: web, stableService: web-stable, canaryService: web-canary}"
            } else {
                ""
            };
            out += &format!(
                "    rollout: {{steps: [{{weight: 20, pause: 2m}}, {{weight: 60, pause: 3m}}]{route}}}\n"
            );
        }
        if e.pre_deploy {
            out += &format!(
                "    preDeploy: [{{name: migrate, timeout: 10m, template: {}}}]\n",
                job()
            );
        }
        let mut gates = Vec::new();
        if e.checks {
            gates.push("checks: [ci]".to_owned());
        }
        if e.soak_min > 0 {
            gates.push(format!("soak: {}m", e.soak_min));
        }
        if e.approvals > 0 {
            gates.push(format!(
                "approvals: [{{name: rm, count: {}, groups: [rm]}}], allowSelfApproval: {}",
                e.approvals, e.allow_self
            ));
        }
        if let Some(n) = e.window_every {
            gates.push(format!(
                "schedule: [{{cron: \"0 */{n} * * *\", duration: 1h}}]"
            ));
        }
        if let Some((start, len)) = e.freeze {
            let (a, b) = (
                t0() + SignedDuration::from_mins(start),
                t0() + SignedDuration::from_mins(start + len),
            );
            gates.push(format!("freeze: [{{start: \"{a}\", end: \"{b}\"}}]"));
        }
        if e.gate_test {
            gates.push(format!(
                "tests: [{{name: load, timeout: 20m, template: {}}}]",
                job()
            ));
        }
        if !gates.is_empty() {
            out += &format!("    gates: {{{}}}\n", gates.join(", "));
        }
    }
    out
}

fn build(s: &Scenario, chaos: Chaos) -> Simulation {
    let pipeline: Pipeline = serde_yaml::from_str(&pipeline_yaml(s))
        .unwrap_or_else(|e| panic!("{e}\n{}", pipeline_yaml(s)));
    let failures = s
        .failures
        .iter()
        .map(|(r, e, mode)| {
            let version = if *r == usize::MAX {
                "*".to_owned()
            } else {
                version(*r)
            };
            format!("{version}@{}:{mode}", env_name(*e))
                .parse()
                .unwrap()
        })
        .collect();

    let mut sim = Simulation::new(
        pipeline,
        t0(),
        Options {
            failures,
            chaos,
            ..Default::default()
        },
    );
    for (i, r) in s.releases.iter().enumerate() {
        let git_ref = if r.hotfix {
            format!("hotfix/h{i}")
        } else {
            "main".into()
        };
        let state = if r.checks_pass { "Passed" } else { "Failed" };
        let yaml = format!(
            "apiVersion: greenlight.dev/v1alpha1\nkind: Release\nmetadata: {{name: {}, namespace: ns}}\nspec: {{pipeline: p, version: \"{}\", artifacts: {{app: \"registry.example.com/app:{}\"}}, source: {{ref: \"{git_ref}\", author: alice}}, requestedBy: bob, checks: [{{name: ci, state: {state}}}]}}\n",
            release_name(i),
            version(i),
            version(i)
        );
        let release: Release = serde_yaml::from_str(&yaml).unwrap();
        // Distinct creation times so that "newest" is never a tie.
        sim.add_release(
            release,
            t0() + SignedDuration::from_mins(r.arrive_min) + SignedDuration::from_secs(i as i64),
        );
    }
    for (i, a) in s.approvals.iter().enumerate() {
        let spec = ApprovalSpec {
            release: release_name(a.release),
            environment: env_name(a.environment),
            decision: a.decision,
            approver: PEOPLE[a.person].into(),
            groups: vec!["rm".into()],
            comment: None,
        };
        sim.add_approval(
            Approval::new(&format!("a{i}"), spec),
            t0() + SignedDuration::from_mins(a.at_min),
        );
    }
    sim
}

fn version(i: usize) -> String {
    format!("1.{i}.0")
}

/// Checks I1 to I5 on every reconcile.
struct Invariants<'a> {
    scenario: &'a Scenario,
    /// Environments with a failed verification awaiting rollback: since when.
    pending: BTreeMap<String, Timestamp>,
    checked: u64,
    rolled_away: BTreeSet<(String, String)>,
    /// By namespace: the canary's share of its route, and the canary's replicas if it was
    /// ready, at the decision before.
    route_shares: BTreeMap<String, (u32, Option<i32>)>,
}

impl<'a> Invariants<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        Self {
            scenario,
            pending: BTreeMap::new(),
            checked: 0,
            route_shares: BTreeMap::new(),
            rolled_away: BTreeSet::new(),
        }
    }

    fn deadline(&self, env: &str) -> SignedDuration {
        let i: usize = env[1..].parse().unwrap();
        // I3: progressDeadline plus one reconcile; API errors retry after 2s.
        SignedDuration::from_mins(self.scenario.envs[i].deadline_min)
            + SignedDuration::from_secs(30)
    }

    /// A canary never outlives its promotion: one seen in an environment whose decided
    /// status has no canary step in flight is deleted by that same decision, or, while its
    /// route still gives it a share, that decision sends the share back to the stable
    /// Service (it is deleted once the route is seen without it).
    fn canaries_end_with_their_step(&self, step: &Step<'_>) {
        for canary in step
            .snapshot
            .workloads
            .iter()
            .filter(|w| w.name.ends_with("-canary"))
        {
            let env = env_name(canary.namespace[3..].parse().unwrap());
            let in_step = step
                .decision
                .pipeline_status
                .environments
                .iter()
                .find(|e| e.name == env)
                .and_then(|e| e.promotion.as_ref())
                .is_some_and(|p| p.stage == PromotionStage::Canary);
            let deleted = step.decision.actions.iter().any(|a| {
                matches!(a, Action::DeleteCanary { stable, .. } if stable.namespace == canary.namespace)
            });
            let has_traffic = step.snapshot.routes.iter().any(|r| {
                r.route.namespace == canary.namespace
                    && r.split("web-stable", "web-canary").iter().any(|s| s.1 > 0)
            });
            let withdrawn = has_traffic
                && step.decision.actions.iter().any(|a| {
                    matches!(a, Action::SetRouteWeights { route, weight: 0, .. } if route.namespace == canary.namespace)
                });
            assert!(
                in_step || deleted || withdrawn,
                "canary {}/{} outlives its step at {}: {:?}",
                canary.namespace,
                canary.name,
                step.snapshot.now,
                step.decision.actions
            );
        }
    }

    /// A route gives a canary a share only while the canary exists, and a larger share
    /// only after a decision saw the canary ready with its replicas for that share.
    fn routes_follow_canaries(&mut self, step: &Step<'_>) {
        for route in &step.snapshot.routes {
            let namespace = &route.route.namespace;
            let Some(&(_, share)) = route.split("web-stable", "web-canary").first() else {
                continue;
            };
            let canary = step
                .snapshot
                .workloads
                .iter()
                .find(|w| &w.namespace == namespace && w.name.ends_with("-canary"));
            assert!(
                share == 0 || canary.is_some(),
                "{} sends {share}% to a canary that does not exist, at {}",
                route.route,
                step.snapshot.now
            );
            if let Some(&(before, ready)) = self.route_shares.get(namespace) {
                let want = greenlight::engine::canary::canary_replicas(share, 4);
                assert!(
                    share <= before || ready == Some(want),
                    "{} went from {before}% to {share}% after a decision that saw the canary with {ready:?} ready replicas, at {}",
                    route.route,
                    step.snapshot.now
                );
            }
            let ready = canary
                .filter(|c| c.available && c.rolled_out())
                .and_then(|c| c.replicas);
            self.route_shares.insert(namespace.clone(), (share, ready));
        }
    }

    fn check(&mut self, step: &Step<'_>) {
        self.checked += 1;
        self.routes_follow_canaries(step);
        let snap = step.snapshot;
        let now = Timestamp::from_second(snap.now.as_second()).unwrap();
        let new = &step.decision.pipeline_status;
        self.canaries_end_with_their_step(step);
        if !step.status_written {
            return;
        }
        for (i, env) in new.environments.iter().enumerate() {
            let old = snap
                .pipeline
                .status
                .environments
                .iter()
                .find(|e| e.name == env.name);
            let started = env
                .promotion
                .as_ref()
                .filter(|p| p.kind == PromotionKind::Deploy && p.started_at.0 == now);
            let was = old
                .and_then(|o| o.promotion.as_ref())
                .filter(|p| p.kind == PromotionKind::Deploy)
                .and_then(|p| p.release.clone());
            if let Some(p) = started
                && was != p.release
            {
                self.check_deploy_start(snap, new, i, p.release.as_deref().unwrap(), now, old);
            }
            let rollback = env.promotion.as_ref().filter(|p| {
                p.kind == PromotionKind::Rollback
                    && p.started_at.0 == now
                    && p.trigger.as_deref() != Some("manual")
            });
            let was_rolling_back = old
                .and_then(|o| o.promotion.as_ref())
                .is_some_and(|p| p.kind == PromotionKind::Rollback);
            if let (Some(p), false) = (rollback, was_rolling_back) {
                // Never loop: a failed release is rolled away from once, unless a person retried it.
                let failed = p.failed_release.clone().unwrap_or_default();
                let retried = snap.approvals.iter().any(|a| {
                    a.spec.decision == Verdict::Retry
                        && a.spec.release == failed
                        && a.spec.environment == env.name
                });
                assert!(
                    self.rolled_away.insert((env.name.clone(), failed.clone())) || retried,
                    "rollback loop: {} rolled away from {failed} again at {now}",
                    env.name
                );
            }
            if env.phase == Some(EnvironmentPhase::Degraded) {
                let degraded = new
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Degraded")
                    .unwrap();
                assert_eq!(
                    degraded.status, "True",
                    "I3: a Degraded environment is never silent"
                );
            }
        }
        for event in &step.decision.events {
            if event.regarding != Regarding::Pipeline {
                continue;
            }
            let env = event.environment.clone().unwrap_or_default();
            match event.reason {
                "VerificationFailed" => {
                    let i: usize = env[1..].parse().unwrap();
                    if self.scenario.envs[i].automatic {
                        self.pending.insert(env.clone(), now);
                    } else {
                        let phase = new
                            .environments
                            .iter()
                            .find(|e| e.name == env)
                            .unwrap()
                            .phase;
                        assert_eq!(
                            phase,
                            Some(EnvironmentPhase::Degraded),
                            "I3: a held failure is marked Degraded"
                        );
                    }
                }
                "RollbackSucceeded" | "EnvironmentDegraded" => {
                    self.pending.remove(&env);
                }
                _ => {}
            }
        }
        for (env, since) in &self.pending {
            assert!(
                now <= *since + self.deadline(env),
                "I3: {env} failed at {since} and was neither restored nor Degraded by {now}"
            );
        }
    }

    fn check_deploy_start(
        &self,
        snap: &Snapshot,
        new: &greenlight::api::PipelineStatus,
        i: usize,
        release: &str,
        now: Timestamp,
        old: Option<&greenlight::api::EnvironmentStatus>,
    ) {
        let spec = &self.scenario.envs[i];
        let env = env_name(i);
        let r = snap
            .releases
            .iter()
            .find(|r| r.name == release)
            .expect("a deployed release exists");
        let context = format!("deploying {release} into {env} at {now}");
        let promote_now = snap.approvals.iter().any(|a| {
            a.spec.decision == Verdict::PromoteNow
                && a.spec.release == release
                && a.spec.environment == env
        });
        // I1: checks.
        if spec.checks {
            assert!(
                r.spec
                    .checks
                    .iter()
                    .any(|c| c.name == "ci" && c.state == greenlight::api::CheckState::Passed),
                "I1 checks: {context}"
            );
        }
        // I1 + I2: distinct approvers, never the author (alice) or requester (bob) unless allowed, no rejection.
        let mine: Vec<_> = snap
            .approvals
            .iter()
            .filter(|a| a.spec.release == release && a.spec.environment == env)
            .collect();
        assert!(
            !mine.iter().any(|a| a.spec.decision == Verdict::Reject),
            "I1 rejected: {context}"
        );
        if spec.approvals > 0 {
            let approvers: BTreeSet<&str> = mine
                .iter()
                .filter(|a| a.spec.decision == Verdict::Approve)
                .map(|a| a.spec.approver.as_str())
                .filter(|who| spec.allow_self || (*who != "alice" && *who != "bob"))
                .collect();
            assert!(
                approvers.len() as u32 >= spec.approvals,
                "I2: {context} with approvers {approvers:?}, {} needed",
                spec.approvals
            );
        }
        // I4: schedule windows (every N hours, UTC, 1h) and freezes.
        if let (Some(n), false) = (spec.window_every, promote_now) {
            let hour = now.to_zoned(jiff::tz::TimeZone::UTC).hour();
            assert_eq!(hour % n as i8, 0, "I4 schedule: {context}");
        }
        if let Some((start, len)) = spec.freeze {
            let (a, b) = (
                t0() + SignedDuration::from_mins(start),
                t0() + SignedDuration::from_mins(start + len),
            );
            assert!(!(a <= now && now < b), "I4 freeze: {context}");
        }
        // I1 soak: a release entering from upstream has been healthy there long enough.
        let direct = (i == 0 && r.spec.source.git_ref == "main")
            || (spec.accepts_hotfix && r.spec.source.git_ref.starts_with("hotfix/"));
        if !direct {
            for &u in &spec.upstream {
                let up = new
                    .environments
                    .iter()
                    .find(|e| e.name == env_name(u))
                    .unwrap();
                assert_eq!(
                    up.current.as_ref().map(|c| c.release.as_str()),
                    Some(release),
                    "I1 upstream: {context}"
                );
                let since = up.healthy_since.as_ref().expect("healthy upstream").0;
                assert!(
                    since + SignedDuration::from_mins(spec.soak_min) <= now,
                    "I1 soak: {context}"
                );
            }
        }
        // I5: forward only.
        if let Some(current) = old.and_then(|o| o.current.as_ref())
            && let Some(c) = snap.releases.iter().find(|x| x.name == current.release)
        {
            assert!(
                (r.created, &r.name) > (c.created, &c.name),
                "I5: {context} over the newer {}",
                current.release
            );
        }
        // A release that failed here is not deployed again without a retry after the failure.
        if let Some(mark) = old.and_then(|o| o.failed.iter().find(|m| m.release == release)) {
            let retried = snap.approvals.iter().any(|a| {
                a.spec.decision == Verdict::Retry
                    && a.spec.release == release
                    && a.spec.environment == env
                    && a.created > mark.at.0
            });
            assert!(
                retried,
                "failed releases are not retried by themselves: {context}"
            );
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// I1 to I5 hold on every reconcile, with API errors and crashes injected.
    #[test]
    fn invariants_hold_under_api_errors_and_crashes(s in scenario(), seed in any::<u64>(), api in 0u32..15, crash in 0u32..15) {
        let mut sim = build(&s, Chaos { seed, api_error_percent: api, crash_percent: crash });
        let mut invariants = Invariants::new(&s);
        sim.run_until(t0() + SignedDuration::from_hours(HOURS), &mut |step| invariants.check(step));
        prop_assert!(invariants.checked > 0);
        let end = sim.now;
        for (env, since) in &invariants.pending {
            prop_assert!(end <= *since + invariants.deadline(env), "I3: {} still failing at the end", env);
        }
    }

    /// I6: crashing at any point and restarting ends in the same state, with nothing done twice.
    #[test]
    fn crashes_change_nothing(s in scenario(), seed in any::<u64>(), crash in 5u32..40) {
        let end = t0() + SignedDuration::from_hours(HOURS);
        let mut calm = build(&s, Chaos::default());
        calm.run_until(end, &mut |_| {});
        let mut crashing = build(&s, Chaos { seed, api_error_percent: 0, crash_percent: crash });
        crashing.run_until(end, &mut |_| {});
        let outcome = |sim: &Simulation| {
            let envs: Vec<_> = sim.status().environments.iter().map(|e| (e.name.clone(), e.current.clone(), e.last_good.clone(), e.phase, e.failed.iter().map(|m| m.release.clone()).collect::<Vec<_>>(), e.history.clone())).collect();
            let transitions: Vec<_> = sim.timeline.iter().filter(|e| e.kind != "Waiting").map(|e| (e.at, e.kind.clone(), e.environment.clone(), e.message.clone())).collect();
            (envs, transitions, sim.world.image_changes.clone())
        };
        let (calm_envs, calm_transitions, calm_changes) = outcome(&calm);
        let (crash_envs, crash_transitions, crash_changes) = outcome(&crashing);
        prop_assert_eq!(calm_envs, crash_envs, "same end state and history");
        prop_assert_eq!(calm_transitions, crash_transitions, "same transitions at the same instants");
        prop_assert_eq!(calm_changes, crash_changes, "no image set twice");
    }
}

/// Failures and every override kind appear in the generated cases (the generator is not
/// accidentally too tame to reach the interesting states).
#[test]
fn the_generator_reaches_rollbacks_degraded_environments_and_overrides() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    for _ in 0..200 {
        let s = scenario().new_tree(&mut runner).unwrap().current();
        let mut sim = build(&s, Chaos::default());
        sim.run_until(t0() + SignedDuration::from_hours(HOURS), &mut |_| {});
        for kind in [
            "RollbackStarted",
            "RollbackSucceeded",
            "EnvironmentDegraded",
            "Superseded",
            "PromotionSucceeded",
            "RetryRequested",
            "DriftRepaired",
            "CanaryStep",
            "CanaryAborted",
        ] {
            if sim.timeline.iter().any(|e| e.kind == kind) {
                seen.insert(kind);
            }
        }
        if !sim.status().overrides.is_empty() {
            seen.insert("override");
        }
        // GitOps environments promote and roll back by commits too.
        for (i, env) in s.envs.iter().enumerate() {
            let in_git = |kind: &str| {
                env.git != 0
                    && sim.timeline.iter().any(|e| {
                        e.kind == kind && e.environment.as_deref() == Some(env_name(i).as_str())
                    })
            };
            if in_git("PromotionSucceeded") {
                seen.insert("git-promoted");
            }
            if in_git("RollbackSucceeded") {
                seen.insert("git-rolled-back");
            }
        }
    }
    for kind in [
        "RollbackStarted",
        "RollbackSucceeded",
        "EnvironmentDegraded",
        "Superseded",
        "PromotionSucceeded",
        "override",
        "CanaryStep",
        "CanaryAborted",
        "git-promoted",
        "git-rolled-back",
    ] {
        assert!(
            seen.contains(kind),
            "no generated case reached {kind}: {seen:?}"
        );
    }
}
