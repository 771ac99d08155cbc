//! The engine's rules one by one, each on a small pipeline in the simulator.

use greenlight::{
    api::{
        Approval, ApprovalSpec, Decision, EnvironmentPhase, Pipeline, Release,
        ReleaseEnvironmentState as State,
    },
    engine::{Action, ON_DELETE_NOTE, WorkloadKind, WorkloadRef, decide},
    sim::{Failure, Options, Simulation, Timing},
};
use jiff::{SignedDuration, Timestamp};

const PIPELINE: &str = r#"
apiVersion: greenlight.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, namespace: shop}
spec:
  environments:
  - name: dev
    accepts: ["main"]
    target: {namespace: shop-dev, deployments: [{name: api}]}
    verify: {progressDeadline: 2m, window: 1m, http: [{url: "http://api.shop-dev/healthz", interval: 10s, failureThreshold: 2}]}
  - name: staging
    target: {namespace: shop-staging, deployments: [{name: api}]}
    verify: {progressDeadline: 2m, window: 1m, http: [{url: "http://api.shop-staging/healthz", interval: 10s, failureThreshold: 2}]}
  - name: prod
    target: {namespace: shop-prod, deployments: [{name: api}]}
    gates:
      soak: 10m
    verify: {progressDeadline: 2m, window: 5m, http: [{url: "http://api.shop-prod/healthz", interval: 10s, failureThreshold: 2}]}
"#;

fn t0() -> Timestamp {
    "2026-11-21T09:00:00Z".parse().unwrap()
}

fn minutes(m: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(m)
}

fn pipeline(yaml: &str) -> Pipeline {
    serde_yaml::from_str(yaml).unwrap()
}

fn release(version: &str, git_ref: &str) -> Release {
    let yaml = format!(
        "apiVersion: greenlight.dev/v1alpha1\nkind: Release\nmetadata: {{name: shop-{name}, namespace: shop}}\nspec: {{pipeline: shop, version: \"{version}\", artifacts: {{api: \"registry.example.com/shop/api:{version}\"}}, source: {{ref: {git_ref}, author: alice}}}}\n",
        name = version.replace('.', "-")
    );
    serde_yaml::from_str(&yaml).unwrap()
}

fn approval(
    name: &str,
    release: &str,
    environment: &str,
    decision: Decision,
    who: &str,
) -> Approval {
    let spec = ApprovalSpec {
        release: release.into(),
        environment: environment.into(),
        decision,
        approver: who.into(),
        groups: vec![],
        comment: None,
    };
    Approval::new(name, spec)
}

fn sim_with(yaml: &str, failures: &[&str]) -> Simulation {
    let failures: Vec<Failure> = failures.iter().map(|f| f.parse().unwrap()).collect();
    Simulation::new(
        pipeline(yaml),
        t0(),
        Options {
            failures,
            ..Default::default()
        },
    )
}

fn run_to(sim: &mut Simulation, minute: i64) {
    sim.run_until(minutes(minute), &mut |_| {});
}

fn state(sim: &Simulation, version: &str, environment: &str) -> Option<State> {
    let name = format!("shop-{}", version.replace('.', "-"));
    sim.release_status(&name)?
        .environments
        .iter()
        .find(|e| e.name == environment)
        .map(|e| e.state)
}

fn runs(sim: &Simulation, environment: &str) -> Option<String> {
    let env = sim
        .status()
        .environments
        .iter()
        .find(|e| e.name == environment)?;
    env.current.as_ref().map(|c| c.version.clone())
}

fn env_phase(sim: &Simulation, environment: &str) -> Option<EnvironmentPhase> {
    sim.status()
        .environments
        .iter()
        .find(|e| e.name == environment)?
        .phase
}

fn image(sim: &Simulation, namespace: &str) -> String {
    sim.world
        .workloads()
        .into_iter()
        .find(|d| d.namespace == namespace)
        .unwrap()
        .containers[0]
        .image
        .clone()
}

#[test]
fn a_release_flows_through_every_environment_in_order() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 60);
    assert_eq!(runs(&sim, "dev").as_deref(), Some("1.0.0"));
    assert_eq!(runs(&sim, "staging").as_deref(), Some("1.0.0"));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    let order: Vec<String> = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "PromotionSucceeded")
        .filter_map(|e| e.environment.clone())
        .collect();
    assert_eq!(order.iter().filter(|e| *e == "dev").count(), 1, "{order:?}");
    let positions: Vec<usize> = ["dev", "staging", "prod"]
        .iter()
        .map(|e| order.iter().position(|o| o == e).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

/// Issue: with the Deployment controller minutes behind (kube-controller-manager at its
/// default 20 QPS under load), rollouts were failed after `progressDeadline` although
/// their new pods had never been tried. The deadline now counts from when the
/// Deployment controller observed the new spec; the wait is shown, and bounded by its own
/// condition, never by failing the release.
#[test]
fn a_lagging_deployment_controller_never_fails_a_release() {
    let mut sim = Simulation::new(
        pipeline(PIPELINE),
        t0(),
        Options {
            // Every new spec is observed 5m after it is written: past dev's 2m deadline.
            timing: Timing {
                observe: std::time::Duration::from_secs(300),
                ..Timing::default()
            },
            ..Default::default()
        },
    );
    sim.add_release(release("1.0.0", "main"), t0());
    let lagging = |sim: &Simulation| {
        sim.status()
            .conditions
            .iter()
            .find(|c| c.type_ == "WorkloadControllerLagging")
            .map(|c| (c.status.clone(), c.message.clone()))
            .unwrap()
    };

    run_to(&mut sim, 1);
    let dev = sim
        .status()
        .environments
        .iter()
        .find(|e| e.name == "dev")
        .unwrap()
        .clone();
    assert_eq!(state(&sim, "1.0.0", "dev"), Some(State::Deploying));
    let message = dev.message.unwrap();
    assert!(
        message.contains("waiting for the Deployment controller to observe generation 2 of shop-dev/api (observed: 1) since 2026-11-21T09:00:01Z"),
        "{message}"
    );
    assert_eq!(
        lagging(&sim).0,
        "False",
        "within the deadline: not lagging yet"
    );

    run_to(&mut sim, 4);
    assert_eq!(
        state(&sim, "1.0.0", "dev"),
        Some(State::Deploying),
        "past the deadline, still waiting: never failed for the control plane's lag"
    );
    let (status, message) = lagging(&sim);
    assert_eq!(status, "True");
    assert!(
        message.contains("dev (since 2026-11-21T09:00:01Z)"),
        "{message}"
    );
    assert!(
        !sim.timeline.iter().any(|e| e.kind == "RollbackStarted"),
        "no rollback for a rollout nobody has tried"
    );

    run_to(&mut sim, 60);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(state(&sim, "1.0.0", "dev"), Some(State::Healthy));
    assert_eq!(lagging(&sim).0, "False", "caught up");
    assert!(!sim.timeline.iter().any(|e| e.kind == "RollbackStarted"));
}

/// Once the Deployment controller has observed the spec, the progress deadline holds
/// from that moment: a rollout that then never completes is failed and rolled back.
#[test]
fn the_progress_deadline_counts_from_the_observation() {
    let mut sim = Simulation::new(
        pipeline(PIPELINE),
        t0(),
        Options {
            failures: vec!["1.0.0@dev:rollout".parse().unwrap()],
            timing: Timing {
                observe: std::time::Duration::from_secs(300),
                ..Timing::default()
            },
            ..Default::default()
        },
    );
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 6);
    assert_eq!(
        state(&sim, "1.0.0", "dev"),
        Some(State::Deploying),
        "observed at 5m: the 2m deadline runs until 7m"
    );
    let dev = sim
        .status()
        .environments
        .iter()
        .find(|e| e.name == "dev")
        .unwrap();
    assert_eq!(
        dev.message.as_deref(),
        Some("rolling out 1.0.0 to dev"),
        "observed: the wait is no longer shown"
    );
    run_to(&mut sim, 8);
    assert_eq!(state(&sim, "1.0.0", "dev"), Some(State::Failed));
    let failed = sim
        .timeline
        .iter()
        .find(|e| e.kind == "RollbackStarted")
        .expect("the rollout that never completes is rolled back");
    assert_eq!(failed.at, minutes(7));
    assert!(
        failed
            .message
            .contains("within 2m of the Deployment controller observing it"),
        "{}",
        failed.message
    );
}

#[test]
fn prod_waits_until_the_release_has_soaked_in_staging() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 6);
    assert_eq!(state(&sim, "1.0.0", "prod"), Some(State::Waiting));
    let status = sim.release_status("shop-1-0-0").unwrap();
    let prod = status
        .environments
        .iter()
        .find(|e| e.name == "prod")
        .unwrap();
    assert_eq!(prod.blocked_by[0].gate, "soak");
    let next = sim
        .status()
        .environments
        .iter()
        .find(|e| e.name == "prod")
        .unwrap()
        .next
        .clone()
        .unwrap_or_default();
    assert!(
        next.starts_with("1.0.0 waits for soak (opens "),
        "prod says what comes next: {next}"
    );
    let opens = prod.blocked_by[0]
        .next_open
        .clone()
        .expect("soak says when it opens")
        .0;
    let staging_healthy = sim
        .timeline
        .iter()
        .find(|e| e.kind == "PromotionSucceeded" && e.environment.as_deref() == Some("staging"))
        .unwrap()
        .at;
    assert_eq!(opens, staging_healthy + SignedDuration::from_mins(10));
    run_to(&mut sim, 40);
    let started = sim
        .timeline
        .iter()
        .find(|e| e.kind == "PromotionStarted" && e.environment.as_deref() == Some("prod"))
        .unwrap()
        .at;
    assert_eq!(started, opens, "the gate opens on time to the second");
}

#[test]
fn the_newest_candidate_wins_and_older_waiting_ones_are_superseded() {
    let yaml = PIPELINE.replace(
        "      soak: 10m",
        "      soak: 10m\n      approvals: [{name: rm, count: 1}]",
    );
    let mut sim = sim_with(&yaml, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(10));
    sim.add_release(release("1.2.0", "main"), minutes(20));
    run_to(&mut sim, 60);
    assert_eq!(runs(&sim, "staging").as_deref(), Some("1.2.0"));
    // Approve the two older ones for prod: only the newest that passes goes.
    sim.add_approval(
        approval("a1", "shop-1-2-0", "prod", Decision::Approve, "bob"),
        minutes(61),
    );
    sim.add_approval(
        approval("a2", "shop-1-1-0", "prod", Decision::Approve, "bob"),
        minutes(61),
    );
    run_to(&mut sim, 120);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.2.0"));
    assert_eq!(state(&sim, "1.1.0", "staging"), Some(State::Superseded));
    assert!(
        !sim.timeline
            .iter()
            .any(|e| e.kind == "PromotionStarted" && e.message.contains("deploying 1.1.0 to prod")),
        "1.1.0 never goes to prod"
    );
}

#[test]
fn an_environment_never_moves_to_an_older_release() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("2.0.0", "main"), t0());
    run_to(&mut sim, 5);
    // An older build (created earlier, arriving late) is not deployed over a newer one.
    let mut old = release("1.9.0", "main");
    old.metadata.name = Some("shop-1-9-0".into());
    sim.add_release(old, t0() - SignedDuration::from_hours(1));
    run_to(&mut sim, 30);
    assert_eq!(runs(&sim, "dev").as_deref(), Some("2.0.0"));
    assert_eq!(state(&sim, "1.9.0", "dev"), Some(State::Superseded));
}

#[test]
fn a_failed_release_is_rolled_back_and_never_promoted_onward() {
    let mut sim = sim_with(PIPELINE, &["1.1.0@staging:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 120);
    assert_eq!(state(&sim, "1.1.0", "staging"), Some(State::Failed));
    assert_eq!(
        runs(&sim, "staging").as_deref(),
        Some("1.0.0"),
        "rolled back to the last good release"
    );
    assert_eq!(
        image(&sim, "shop-staging"),
        "registry.example.com/shop/api:1.0.0"
    );
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert!(state(&sim, "1.1.0", "prod").is_none());
    let deploys = sim
        .timeline
        .iter()
        .filter(|e| {
            e.kind == "PromotionStarted" && e.message.contains("deploying 1.1.0 to staging")
        })
        .count();
    assert_eq!(deploys, 1, "not retried by itself");
}

#[test]
fn a_retry_lets_a_failed_release_be_deployed_again() {
    let mut sim = sim_with(PIPELINE, &["1.1.0@staging:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 60);
    assert_eq!(state(&sim, "1.1.0", "staging"), Some(State::Failed));
    sim.add_approval(
        approval("retry", "shop-1-1-0", "staging", Decision::Retry, "carol"),
        minutes(61),
    );
    run_to(&mut sim, 62);
    let deploys = sim
        .timeline
        .iter()
        .filter(|e| {
            e.kind == "PromotionStarted" && e.message.contains("deploying 1.1.0 to staging")
        })
        .count();
    assert_eq!(deploys, 2);
    assert!(
        sim.status()
            .overrides
            .iter()
            .any(|o| o.decision == Decision::Retry && o.requested_by == "carol")
    );
}

#[test]
fn a_rollback_that_cannot_complete_degrades_the_environment_without_looping() {
    // Nothing can roll out in staging, not even the baseline the rollback restores.
    let mut sim = sim_with(PIPELINE, &["*@staging:rollout"]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 240);
    assert_eq!(env_phase(&sim, "staging"), Some(EnvironmentPhase::Degraded));
    let started = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "RollbackStarted")
        .collect::<Vec<_>>();
    assert_eq!(started.len(), 1, "one rollback, no loop");
    let degraded = sim
        .timeline
        .iter()
        .find(|e| e.kind == "EnvironmentDegraded")
        .expect("an Event says so");
    // I3: the rollback gets progressDeadline (2m) plus one reconcile.
    assert!(
        degraded.at <= started[0].at + SignedDuration::from_mins(2) + SignedDuration::from_secs(1),
        "{} vs {}",
        degraded.at,
        started[0].at
    );
    let condition = sim
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(condition.status, "True");
    assert_eq!(runs(&sim, "staging"), None);
    assert_eq!(
        state(&sim, "1.1.0", "staging"),
        Some(State::Waiting),
        "no further promotions into it"
    );
    let blocked = sim
        .release_status("shop-1-1-0")
        .unwrap()
        .environments
        .iter()
        .find(|e| e.name == "staging")
        .unwrap()
        .blocked_by[0]
        .clone();
    assert!(blocked.reason.contains("Degraded"), "{}", blocked.reason);
}

#[test]
fn automatic_rollback_off_holds_the_failed_release_and_degrades() {
    let yaml = PIPELINE.replacen(
        "  - name: staging\n",
        "  - name: staging\n    rollback: {automatic: false}\n",
        1,
    );
    let mut sim = sim_with(&yaml, &["1.0.0@staging:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    assert_eq!(env_phase(&sim, "staging"), Some(EnvironmentPhase::Degraded));
    assert_eq!(
        image(&sim, "shop-staging"),
        "registry.example.com/shop/api:1.0.0",
        "held, not rolled back"
    );
    let degraded = sim
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(degraded.status, "True");
    assert!(!sim.timeline.iter().any(|e| e.kind == "RollbackStarted"));
}

#[test]
fn drift_is_restored_and_reported() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 60);
    let releases = sim.visible_releases();
    let hand_edit = Action::SetImages {
        workload: greenlight::engine::WorkloadRef {
            cluster: None,
            kind: greenlight::engine::WorkloadKind::Deployment,
            namespace: "shop-prod".into(),
            name: "api".into(),
        },
        images: vec![greenlight::engine::ContainerImage {
            container: "api".into(),
            image: "registry.example.com/shop/api:hotpatch".into(),
        }],
    };
    sim.world.apply(&hand_edit, sim.now, &releases);
    sim.reconcile(&mut |_| {});
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.0.0"
    );
    let repair = sim
        .timeline
        .iter()
        .find(|e| e.kind == "DriftRepaired")
        .expect("an Event reports the repair");
    assert!(
        repair
            .message
            .contains("api/api runs registry.example.com/shop/api:hotpatch"),
        "{}",
        repair.message
    );
}

#[test]
fn an_unhealthy_environment_stops_promoting_its_release_downstream() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 6);
    assert_eq!(state(&sim, "1.0.0", "staging"), Some(State::Healthy));
    assert_eq!(
        state(&sim, "1.0.0", "prod"),
        Some(State::Waiting),
        "soaking"
    );
    // Staging turns unhealthy while prod waits for the soak.
    sim.world.inject("1.0.0@staging:health".parse().unwrap());
    run_to(&mut sim, 60);
    assert_eq!(state(&sim, "1.0.0", "staging"), Some(State::Unhealthy));
    assert!(
        state(&sim, "1.0.0", "prod").is_none(),
        "no longer a candidate for prod"
    );
    assert_eq!(runs(&sim, "prod"), None);
    assert_eq!(
        runs(&sim, "staging").as_deref(),
        Some("1.0.0"),
        "not rolled back: afterVerification is off"
    );
    assert!(
        sim.timeline
            .iter()
            .any(|e| e.kind == "EnvironmentUnhealthy")
    );
}

#[test]
fn with_rollback_after_verification_an_unhealthy_release_is_rolled_back() {
    let yaml = PIPELINE.replacen(
        "  - name: staging\n",
        "  - name: staging\n    rollback: {afterVerification: true}\n",
        1,
    );
    let mut sim = sim_with(&yaml, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 40);
    assert_eq!(state(&sim, "1.1.0", "staging"), Some(State::Healthy));
    sim.world.inject("1.1.0@staging:health".parse().unwrap());
    run_to(&mut sim, 60);
    assert_eq!(runs(&sim, "staging").as_deref(), Some("1.0.0"));
    assert_eq!(state(&sim, "1.1.0", "staging"), Some(State::Failed));
    assert!(
        sim.timeline
            .iter()
            .any(|e| e.kind == "RollbackStarted" && e.message.contains("staging"))
    );
    let rollbacks = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "RollbackStarted")
        .count();
    assert_eq!(rollbacks, 1, "rolled back once, no loop");
}

#[test]
fn suspend_stops_new_promotions() {
    let yaml = PIPELINE.replace(
        "spec:\n  environments:",
        "spec:\n  suspend: true\n  environments:",
    );
    let mut sim = sim_with(&yaml, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    assert_eq!(runs(&sim, "dev"), None);
    let dev = sim
        .release_status("shop-1-0-0")
        .unwrap()
        .environments
        .iter()
        .find(|e| e.name == "dev")
        .cloned()
        .unwrap();
    assert_eq!(dev.blocked_by[0].gate, "suspended");
}

#[test]
fn a_freeze_blocks_and_says_when_it_ends() {
    let yaml = PIPELINE.replace(
        "      soak: 10m",
        "      soak: 10m\n      freeze: [{start: \"2026-11-21T09:00:00Z\", end: \"2026-11-21T12:00:00Z\", reason: \"board meeting\"}]",
    );
    let mut sim = sim_with(&yaml, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 170);
    assert_eq!(runs(&sim, "prod"), None);
    let prod = sim
        .release_status("shop-1-0-0")
        .unwrap()
        .environments
        .iter()
        .find(|e| e.name == "prod")
        .cloned()
        .unwrap();
    let freeze = prod
        .blocked_by
        .iter()
        .find(|b| b.gate == "freeze")
        .expect("the freeze blocks");
    assert!(freeze.reason.contains("board meeting"));
    assert_eq!(
        freeze.next_open.clone().unwrap().0,
        "2026-11-21T12:00:00Z".parse::<Timestamp>().unwrap()
    );
    run_to(&mut sim, 200);
    let started = sim
        .timeline
        .iter()
        .find(|e| e.kind == "PromotionStarted" && e.environment.as_deref() == Some("prod"))
        .unwrap();
    assert_eq!(
        started.at,
        "2026-11-21T12:00:00Z".parse::<Timestamp>().unwrap()
    );
}

#[test]
fn a_person_can_roll_an_environment_back_to_a_named_release() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 120);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.1.0"));
    sim.add_approval(
        approval("back", "shop-1-0-0", "prod", Decision::Rollback, "dana"),
        minutes(121),
    );
    run_to(&mut sim, 180);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.0.0"
    );
    assert_eq!(
        state(&sim, "1.1.0", "prod"),
        Some(State::Failed),
        "not promoted again by itself"
    );
    let record = sim
        .status()
        .overrides
        .iter()
        .find(|o| o.decision == Decision::Rollback)
        .unwrap();
    assert_eq!(
        (record.requested_by.as_str(), record.release.as_str()),
        ("dana", "shop-1-0-0")
    );
}

#[test]
fn an_invalid_spec_sets_a_condition_and_touches_nothing() {
    let yaml = PIPELINE.replace("soak: 10m", "soak: 10 minutes");
    let mut sim = sim_with(&yaml, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    let mut actions = 0;
    sim.run_until(minutes(30), &mut |step| {
        actions += step.decision.actions.len()
    });
    assert_eq!(actions, 0);
    let ready = sim
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(
        ready.message.contains("spec.environments[2].gates.soak"),
        "{}",
        ready.message
    );
}

#[test]
fn deciding_twice_on_the_same_snapshot_gives_the_same_decision() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    let mut checked = 0;
    sim.run_until(minutes(60), &mut |step| {
        let again = decide(step.snapshot);
        assert_eq!(again.actions, step.decision.actions);
        assert_eq!(again.pipeline_status, step.decision.pipeline_status);
        assert_eq!(again.release_statuses, step.decision.release_statuses);
        assert_eq!(again.requeue_at, step.decision.requeue_at);
        checked += 1;
    });
    assert!(checked >= 5, "only {checked} reconciles");
}

#[test]
fn statuses_do_not_change_with_the_clock_while_a_gate_holds() {
    // Each status write triggers another reconcile in the controller: a status that moved
    // with `now` (a soak "for 3m of 10m") would be rewritten in a loop while it waits.
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 6);
    assert_eq!(
        state(&sim, "1.0.0", "prod"),
        Some(State::Waiting),
        "soaking"
    );
    let mut snapshot = sim.snapshot();
    let first = greenlight::engine::decide(&snapshot);
    snapshot.now += SignedDuration::from_secs(97);
    let later = greenlight::engine::decide(&snapshot);
    let prod = |d: &greenlight::engine::Decision| {
        d.release_statuses["shop-1-0-0"]
            .environments
            .iter()
            .find(|e| e.name == "prod")
            .cloned()
    };
    assert!(
        format!("{:?}", prod(&first)).contains("soak"),
        "blocked by the soak: {:?}",
        prod(&first)
    );
    assert_eq!(prod(&first), prod(&later));
    assert_eq!(first.release_statuses, later.release_statuses);
    assert_eq!(first.pipeline_status, later.pipeline_status);
}

/// Every kind in one environment, each also in prod; `api` is the artifact of all of them.
const KINDS: &str = r#"
apiVersion: greenlight.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, namespace: shop}
spec:
  environments:
  - name: dev
    accepts: ["main"]
    target:
      namespace: shop-dev
      deployments: [{name: api}]
      workloads:
      - {kind: StatefulSet, name: db, artifact: api}
      - {kind: DaemonSet, name: agent, artifact: api}
      - {kind: CronJob, name: nightly, artifact: api}
    verify: {progressDeadline: 2m, window: 1m, http: [{url: "http://api.shop-dev/healthz", interval: 10s, failureThreshold: 2}]}
  - name: prod
    target:
      namespace: shop-prod
      deployments: [{name: api}]
      workloads:
      - {kind: StatefulSet, name: db, artifact: api}
      - {kind: DaemonSet, name: agent, artifact: api}
      - {kind: CronJob, name: nightly, artifact: api}
    verify: {progressDeadline: 2m, window: 1m, http: [{url: "http://api.shop-prod/healthz", interval: 10s, failureThreshold: 2}]}
"#;

/// The image of every workload in `namespace`, by kind.
fn images_by_kind(sim: &Simulation, namespace: &str) -> Vec<(WorkloadKind, String)> {
    let mut images: Vec<(WorkloadKind, String)> = sim
        .world
        .workloads()
        .into_iter()
        .filter(|w| w.namespace == namespace)
        .map(|w| (w.kind, w.containers[0].image.clone()))
        .collect();
    images.sort();
    images
}

fn every_kind_runs(version: &str) -> Vec<(WorkloadKind, String)> {
    let image = format!("registry.example.com/shop/api:{version}");
    let mut all: Vec<(WorkloadKind, String)> = WorkloadKind::ALL
        .iter()
        .map(|k| (*k, image.clone()))
        .collect();
    all.sort();
    all
}

fn shop_dev(kind: WorkloadKind, name: &str) -> WorkloadRef {
    WorkloadRef {
        cluster: None,
        kind,
        namespace: "shop-dev".into(),
        name: name.into(),
    }
}

fn dev_message(sim: &Simulation) -> String {
    sim.status()
        .environments
        .iter()
        .find(|e| e.name == "dev")
        .and_then(|e| e.message.clone())
        .unwrap_or_default()
}

#[test]
fn workloads_of_every_kind_roll_out_together_and_a_cronjob_at_once() {
    let mut sim = sim_with(KINDS, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    for namespace in ["shop-dev", "shop-prod"] {
        assert_eq!(
            images_by_kind(&sim, namespace),
            every_kind_runs("1.0.0"),
            "{namespace}"
        );
    }
    let nightly = sim
        .world
        .workloads()
        .into_iter()
        .find(|w| w.kind == WorkloadKind::CronJob && w.namespace == "shop-dev")
        .unwrap();
    assert!(
        nightly.rolled_out(),
        "a CronJob is rolled out once its spec is accepted"
    );
}

#[test]
fn a_rollback_restores_every_kind() {
    let mut sim = sim_with(KINDS, &["1.1.0@prod:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 120);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Failed));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(images_by_kind(&sim, "shop-prod"), every_kind_runs("1.0.0"));
    assert_eq!(images_by_kind(&sim, "shop-dev"), every_kind_runs("1.1.0"));
    for counted in [
        "shop-prod/api",
        "shop-prod/StatefulSet/db",
        "shop-prod/DaemonSet/agent",
        "shop-prod/CronJob/nightly",
    ] {
        assert_eq!(
            sim.world.image_changes.get(counted),
            Some(&3),
            "{counted}: 1.0.0, 1.1.0, back to 1.0.0"
        );
    }
}

#[test]
fn an_on_delete_statefulset_says_its_pods_change_only_when_deleted_and_then_completes() {
    let mut sim = sim_with(KINDS, &[]);
    let db = shop_dev(WorkloadKind::StatefulSet, "db");
    sim.world.set_on_delete(&db);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 1);
    let message = dev_message(&sim);
    assert!(
        message.contains(&format!("StatefulSet db: {ON_DELETE_NOTE}")),
        "{message}"
    );
    assert_eq!(
        state(&sim, "1.0.0", "dev"),
        Some(State::Deploying),
        "not rolled out while the old pods run"
    );
    sim.world.delete_pods(&db, minutes(1));
    run_to(&mut sim, 10);
    assert_eq!(state(&sim, "1.0.0", "dev"), Some(State::Healthy));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
}

#[test]
fn an_on_delete_statefulset_whose_pods_are_never_deleted_fails_at_the_deadline_saying_why() {
    let mut sim = sim_with(KINDS, &[]);
    sim.world
        .set_on_delete(&shop_dev(WorkloadKind::StatefulSet, "db"));
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 10);
    assert_eq!(state(&sim, "1.0.0", "dev"), Some(State::Failed));
    let failed = sim
        .timeline
        .iter()
        .find(|e| e.message.contains("did not complete within 2m"))
        .expect("the failure is reported");
    assert!(
        failed.message.contains("updateStrategy is OnDelete"),
        "the reason says why: {}",
        failed.message
    );
}

/// dev in the controller's cluster, prod in another one (its kubeconfig in the Secret
/// `prod-cluster`).
const REMOTE_PROD: &str = r#"
apiVersion: greenlight.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, namespace: shop}
spec:
  environments:
  - name: dev
    accepts: ["main"]
    target: {namespace: shop-dev, deployments: [{name: api}]}
    verify: {progressDeadline: 2m, window: 1m}
  - name: prod
    target:
      namespace: shop-prod
      deployments: [{name: api}]
      cluster: {secretRef: {name: prod-cluster}}
    verify: {progressDeadline: 2m, window: 1m}
"#;

fn condition(sim: &Simulation, type_: &str) -> Option<(String, String)> {
    sim.status()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

#[test]
fn an_unreachable_cluster_holds_only_its_environment_and_the_promotion_completes_when_it_returns() {
    let mut sim = sim_with(REMOTE_PROD, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 10);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    let prod = sim
        .world
        .workloads()
        .into_iter()
        .find(|w| w.namespace == "shop-prod")
        .unwrap();
    assert_eq!(prod.cluster.as_deref(), Some("prod-cluster"));
    assert_eq!(
        condition(&sim, "ClusterUnreachable")
            .map(|c| c.0)
            .as_deref(),
        Some("False")
    );

    sim.set_unreachable("prod-cluster", "shop-prod", Some("connection refused"));
    sim.add_release(release("1.1.0", "main"), minutes(11));
    run_to(&mut sim, 30);
    // dev goes on; prod waits, says why, and nothing was sent to its cluster.
    assert_eq!(runs(&sim, "dev").as_deref(), Some("1.1.0"));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.0.0"
    );
    let (status, message) = condition(&sim, "ClusterUnreachable").unwrap();
    assert_eq!(status, "True");
    assert!(
        message.contains("prod (cluster prod-cluster: connection refused)"),
        "{message}"
    );
    let waiting = sim
        .release_status("shop-1-1-0")
        .and_then(|s| s.environments.iter().find(|e| e.name == "prod").cloned())
        .unwrap();
    assert_eq!(waiting.state, State::Waiting);
    assert!(
        waiting.blocked_by.iter().any(|g| g
            .reason
            .contains("cluster prod-cluster cannot be used: connection refused")),
        "{waiting:?}"
    );

    sim.set_unreachable("prod-cluster", "shop-prod", None);
    run_to(&mut sim, 40);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.1.0"));
    assert_eq!(
        condition(&sim, "ClusterUnreachable")
            .map(|c| c.0)
            .as_deref(),
        Some("False")
    );
}

#[test]
fn a_pipeline_without_other_clusters_has_no_cluster_condition() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 10);
    assert_eq!(condition(&sim, "ClusterUnreachable"), None);
}

const CANARY: &str = r#"
apiVersion: greenlight.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, namespace: shop}
spec:
  environments:
  - name: prod
    accepts: ["main"]
    target: {namespace: shop-prod, deployments: [{name: api}]}
    verify: {progressDeadline: 2m, window: 1m, http: [{url: "http://api.shop-prod/healthz", interval: 10s, failureThreshold: 2}]}
    rollout:
      steps: [{weight: 10, pause: 5m}, {weight: 50, pause: 10m}]
"#;

/// Every decision's canary actions, with when they were decided.
fn canary_actions(sim: &mut Simulation, minute: i64) -> Vec<(Timestamp, Action)> {
    let mut seen = Vec::new();
    sim.run_until(minutes(minute), &mut |step| {
        for action in step.applied {
            if matches!(
                action,
                Action::SetCanary { .. } | Action::DeleteCanary { .. }
            ) {
                seen.push((step.snapshot.now, action.clone()));
            }
        }
    });
    seen
}

fn canary_image(sim: &Simulation) -> Option<String> {
    sim.world
        .workloads()
        .into_iter()
        .find(|w| w.namespace == "shop-prod" && w.name == "api-canary")
        .map(|w| w.containers[0].image.clone())
}

#[test]
fn canary_steps_hold_for_their_pauses_then_the_targets_take_the_release() {
    let mut sim = sim_with(CANARY, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(canary_image(&sim), None, "the canary is gone once done");

    sim.add_release(release("1.1.0", "main"), minutes(30));
    let during = canary_actions(&mut sim, 33);
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.0.0",
        "the stable Deployment keeps its image during the steps"
    );
    assert_eq!(
        canary_image(&sim).as_deref(),
        Some("registry.example.com/shop/api:1.1.0")
    );
    let message = sim.status().environments[0].message.clone().unwrap();
    assert!(
        message.starts_with("canary 10% of 1.1.0 in prod (step 1 of 2) for 5m,"),
        "{message}"
    );
    let rest = canary_actions(&mut sim, 90);
    let weights: Vec<(Timestamp, u32)> = during
        .iter()
        .chain(&rest)
        .filter_map(|(at, a)| match a {
            Action::SetCanary { weight, .. } => Some((*at, *weight)),
            _ => None,
        })
        .collect();
    let first_50 = weights
        .iter()
        .find(|(_, w)| *w == 50)
        .expect("step 2 ran")
        .0;
    let first_10 = weights.first().expect("step 1 ran").0;
    assert!(
        first_50 >= first_10 + SignedDuration::from_mins(5),
        "step 1 held its 5m pause: {weights:?}"
    );
    assert!(
        weights.iter().all(|(_, w)| *w == 10 || *w == 50),
        "{weights:?}"
    );
    assert!(
        rest.iter()
            .any(|(_, a)| matches!(a, Action::DeleteCanary { .. })),
        "the canary is deleted at the end"
    );
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.1.0"));
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.1.0"
    );
    assert_eq!(canary_image(&sim), None);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Healthy));
    let steps: Vec<&str> = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "CanaryStep")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "canary 10% of 1.0.0 in prod (step 1 of 2), for 5m once ready",
            "canary 50% of 1.0.0 in prod (step 2 of 2), for 10m once ready",
            "canary 10% of 1.1.0 in prod (step 1 of 2), for 5m once ready",
            "canary 50% of 1.1.0 in prod (step 2 of 2), for 10m once ready",
        ],
        "the first release over the baseline takes the steps too"
    );
    let passed = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "CanaryStepPassed" && e.message.contains("of 1.1.0"))
        .count();
    assert_eq!(passed, 2, "each step of 1.1.0 passed once");
}

#[test]
fn a_failing_canary_step_aborts_and_leaves_the_stable_deployment_untouched() {
    let mut sim = sim_with(CANARY, &["1.1.0@prod:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    let changes_before = sim.world.image_changes.get("shop-prod/api").copied();
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 90);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Failed));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(
        sim.world.image_changes.get("shop-prod/api").copied(),
        changes_before,
        "the stable Deployment never changed"
    );
    assert_eq!(canary_image(&sim), None, "the canary is deleted");
    let aborted = sim
        .timeline
        .iter()
        .find(|e| e.kind == "CanaryAborted")
        .expect("an Event says the canary was aborted");
    assert!(
        aborted.message.contains(
            "1.1.0 was aborted in prod: canary step 1 (10%) failed: health check http[0] failed"
        ),
        "{}",
        aborted.message
    );
    assert_eq!(env_phase(&sim, "prod"), Some(EnvironmentPhase::Idle));
    assert!(
        !sim.timeline
            .iter()
            .any(|e| e.kind == "CanaryStepPassed" && e.message.contains("1.1.0")),
        "no step of the failing release passed"
    );
}

/// [`CANARY`], its traffic split by an HTTPRoute's weights.
fn canary_by_route() -> String {
    format!(
        "{CANARY}      gatewayAPI: {{httpRoute: shop, stableService: api-stable, canaryService: api-canary}}\n"
    )
}

/// What a decision saw of the canary.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Canary {
    Absent,
    /// It exists, but is scaling or rolling out.
    Starting,
    /// Rolled out and available, with these replicas.
    Ready(i32),
}

/// What each decision saw of the route and the canary: (when, the canary's share of the
/// route's traffic, the canary).
fn route_and_canary(sim: &mut Simulation, minute: i64) -> Vec<(Timestamp, u32, Canary)> {
    let mut seen = Vec::new();
    sim.run_until(minutes(minute), &mut |step| {
        let snap = step.snapshot;
        let share = snap
            .routes
            .iter()
            .find(|r| r.route.name == "shop")
            .map(|r| r.split("api-stable", "api-canary"))
            .expect("the route is observed");
        assert_eq!(share.len(), 1, "{share:?}");
        let (stable, canary) = share[0];
        assert_eq!(stable + canary, 100, "{share:?}");
        let seen_canary = match snap.workloads.iter().find(|w| w.name == "api-canary") {
            None => Canary::Absent,
            Some(w) if w.available && w.rolled_out() => Canary::Ready(w.replicas.unwrap_or(0)),
            Some(_) => Canary::Starting,
        };
        seen.push((snap.now, canary, seen_canary));
    });
    seen
}

/// The route gives a canary a share only while it exists, and a larger share only when
/// the decision that shifted it saw the canary ready and scaled to that share (of the
/// simulator's 4 replicas).
fn assert_traffic_follows_readiness(seen: &[(Timestamp, u32, Canary)]) {
    for (at, share, canary) in seen {
        assert!(
            *share == 0 || *canary != Canary::Absent,
            "at {at} the route sent {share}% to a canary that does not exist"
        );
    }
    for pair in seen.windows(2) {
        let ((_, before, canary), (at, after, _)) = (pair[0], pair[1]);
        let scaled = Canary::Ready(greenlight::engine::canary::canary_replicas(after, 4));
        assert!(
            after <= before || canary == scaled,
            "at {at} the route went from {before}% to {after}% by a decision that saw the canary {canary:?}"
        );
    }
}

#[test]
fn by_route_traffic_reaches_a_canary_only_while_it_is_ready_and_goes_back_before_it_is_deleted() {
    let mut sim = sim_with(&canary_by_route(), &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    sim.add_release(release("1.1.0", "main"), minutes(30));
    let seen = route_and_canary(&mut sim, 90);
    assert_traffic_follows_readiness(&seen);
    let mut shares: Vec<u32> = seen.iter().map(|s| s.1).collect();
    shares.dedup();
    assert_eq!(shares, [0, 10, 50, 0], "the route's canary share over time");
    let first = |share: u32| seen.iter().find(|s| s.1 == share).unwrap().0;
    assert!(
        first(50) >= first(10) + SignedDuration::from_mins(5),
        "the 5m pause counts from when the route carried 10%"
    );
    assert_eq!(canary_image(&sim), None, "the canary is gone once done");
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.1.0"
    );
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Healthy));
}

#[test]
fn an_aborted_step_by_route_gives_the_stable_service_all_traffic_then_deletes_the_canary() {
    let mut sim = sim_with(&canary_by_route(), &["1.1.0@prod:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    let changes_before = sim.world.image_changes.get("shop-prod/api").copied();
    sim.add_release(release("1.1.0", "main"), minutes(30));
    let seen = route_and_canary(&mut sim, 90);
    assert_traffic_follows_readiness(&seen);
    assert!(seen.iter().any(|s| s.1 == 10), "step 1 had its traffic");
    assert_eq!(seen.last().map(|s| s.1), Some(0));
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Failed));
    assert_eq!(canary_image(&sim), None, "the canary is deleted");
    assert_eq!(
        sim.world.image_changes.get("shop-prod/api").copied(),
        changes_before,
        "the stable Deployment never changed"
    );
}

#[test]
fn a_step_by_route_without_the_route_waits_then_aborts_with_the_reason() {
    let mut sim = sim_with(&canary_by_route(), &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    sim.world.remove_routes();
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 31);
    let message = sim.status().environments[0].message.clone().unwrap();
    assert_eq!(
        message,
        "canary 10% of 1.1.0 in prod (step 1 of 2): HTTPRoute shop-prod/shop is not found"
    );
    run_to(&mut sim, 40);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Failed));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(canary_image(&sim), None, "the canary is deleted");
    let aborted = sim
        .timeline
        .iter()
        .find(|e| e.kind == "CanaryAborted")
        .expect("an Event says the canary was aborted");
    assert!(
        aborted.message.contains(
            "canary step 1 (10%) failed: the canary was not ready within 2m (HTTPRoute shop-prod/shop is not found)"
        ),
        "{}",
        aborted.message
    );
}

/// When each canary step of 1.1.0 started, from its Events.
fn step_starts(sim: &Simulation) -> Vec<Timestamp> {
    sim.timeline
        .iter()
        .filter(|e| e.kind == "CanaryStep" && e.message.contains("of 1.1.0"))
        .map(|e| e.at)
        .collect()
}

#[test]
fn a_person_promotes_one_canary_step_and_the_next_holds_its_own_pause() {
    let mut sim = sim_with(CANARY, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 32);
    sim.add_approval(
        approval(
            "skip-1",
            "shop-1-1-0",
            "prod",
            Decision::PromoteStep,
            "alice",
        ),
        minutes(32),
    );
    run_to(&mut sim, 33);
    let starts = step_starts(&sim);
    assert_eq!(starts.len(), 2, "step 2 started: {starts:?}");
    assert!(
        starts[1] < starts[0] + SignedDuration::from_mins(3),
        "step 1 ended without the rest of its 5m pause: {starts:?}"
    );
    let promoted = sim
        .timeline
        .iter()
        .find(|e| e.kind == "CanaryStepPromoted")
        .expect("an Event says who promoted the step");
    assert!(
        promoted
            .message
            .starts_with("alice promoted canary 10% of 1.1.0 in prod after 1m"),
        "{}",
        promoted.message
    );
    let record = &sim.status().overrides[0];
    assert_eq!(
        (
            record.decision,
            record.approval.as_str(),
            record.requested_by.as_str()
        ),
        (Decision::PromoteStep, "skip-1", "alice")
    );
    // The approval was for step 1: step 2 holds its 10 minutes.
    run_to(&mut sim, 40);
    let message = sim.status().environments[0].message.clone().unwrap();
    assert!(
        message.starts_with("canary 50% of 1.1.0 in prod (step 2 of 2) for 10m,"),
        "{message}"
    );
    run_to(&mut sim, 60);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Healthy));
    assert_eq!(
        sim.status()
            .overrides
            .iter()
            .filter(|o| o.decision == Decision::PromoteStep)
            .count(),
        1,
        "recorded once"
    );
}

#[test]
fn a_person_aborts_a_canary_and_the_stable_release_keeps_serving() {
    let mut sim = sim_with(&canary_by_route(), &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 30);
    let changes_before = sim.world.image_changes.get("shop-prod/api").copied();
    sim.add_release(release("1.1.0", "main"), minutes(30));
    run_to(&mut sim, 32);
    sim.add_approval(
        approval("stop", "shop-1-1-0", "prod", Decision::AbortCanary, "bob"),
        minutes(32),
    );
    run_to(&mut sim, 40);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Failed));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"));
    assert_eq!(canary_image(&sim), None, "the canary is deleted");
    assert_eq!(
        sim.world.image_changes.get("shop-prod/api").copied(),
        changes_before,
        "the stable Deployment never changed"
    );
    let route = sim.world.routes();
    assert_eq!(route[0].split("api-stable", "api-canary"), [(100, 0)]);
    let aborted = sim
        .timeline
        .iter()
        .find(|e| e.kind == "CanaryAborted")
        .expect("an Event says the canary was aborted");
    assert!(
        aborted
            .message
            .contains("1.1.0 was aborted in prod: canary step 1 (10%) aborted by bob"),
        "{}",
        aborted.message
    );
    let record = &sim.status().overrides[0];
    assert_eq!(
        (record.decision, record.requested_by.as_str()),
        (Decision::AbortCanary, "bob")
    );
}

#[test]
fn a_pin_moves_an_environment_to_its_release_without_the_gates_and_holds_it_there() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 60);
    sim.add_release(release("1.1.0", "main"), minutes(60));
    run_to(&mut sim, 120);
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.1.0"));

    let mut spec = pipeline(PIPELINE).spec;
    let prod = spec
        .environments
        .iter_mut()
        .find(|e| e.name == "prod")
        .unwrap();
    prod.pin = Some(greenlight::api::Pin {
        release: "shop-1-0-0".into(),
        reason: "INC-42: 1.1.0 corrupts carts".into(),
    });
    sim.update_pipeline(spec.clone());
    run_to(&mut sim, 150);
    assert_eq!(
        runs(&sim, "prod").as_deref(),
        Some("1.0.0"),
        "the pin moves prod back, without waiting for its soak gate"
    );
    let pinned = sim
        .timeline
        .iter()
        .find(|e| e.kind == "Pinned")
        .expect("an Event says why prod moved");
    assert!(
        pinned
            .message
            .contains("prod moves to 1.0.0 (shop-1-0-0), to which it is pinned: INC-42"),
        "{}",
        pinned.message
    );

    sim.add_release(release("1.2.0", "main"), minutes(150));
    run_to(&mut sim, 240);
    assert_eq!(runs(&sim, "staging").as_deref(), Some("1.2.0"));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"), "held");
    let waiting = sim
        .release_status("shop-1-2-0")
        .and_then(|s| s.environments.iter().find(|e| e.name == "prod").cloned())
        .unwrap();
    assert_eq!(waiting.state, State::Waiting);
    assert_eq!(waiting.blocked_by[0].gate, "pinned", "{waiting:?}");
    assert!(
        waiting.blocked_by[0].reason.contains("INC-42"),
        "{waiting:?}"
    );

    spec.environments
        .iter_mut()
        .find(|e| e.name == "prod")
        .unwrap()
        .pin = None;
    sim.update_pipeline(spec);
    run_to(&mut sim, 300);
    assert_eq!(
        runs(&sim, "prod").as_deref(),
        Some("1.2.0"),
        "promotion resumes once the pin goes"
    );
}

#[test]
fn a_pin_to_a_missing_or_failed_release_holds_and_says_why() {
    let mut sim = sim_with(PIPELINE, &["1.1.0@prod:health"]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 60);
    let mut spec = pipeline(PIPELINE).spec;
    let pin = |spec: &mut greenlight::api::PipelineSpec, release: &str| {
        spec.environments
            .iter_mut()
            .find(|e| e.name == "prod")
            .unwrap()
            .pin = Some(greenlight::api::Pin {
            release: release.into(),
            reason: "CHG-7".into(),
        });
    };
    pin(&mut spec, "shop-9-9-9");
    sim.update_pipeline(spec.clone());
    run_to(&mut sim, 70);
    assert_eq!(
        env_message(&sim, "prod").as_deref(),
        Some(
            "pinned to shop-9-9-9, which does not exist: prod holds until it does or the pin goes"
        )
    );
    sim.add_release(release("1.1.0", "main"), minutes(70));
    pin(&mut spec, "shop-1-1-0");
    sim.update_pipeline(spec);
    run_to(&mut sim, 150);
    assert_eq!(state(&sim, "1.1.0", "prod"), Some(State::Failed));
    assert_eq!(runs(&sim, "prod").as_deref(), Some("1.0.0"), "rolled back");
    let message = env_message(&sim, "prod").unwrap();
    assert!(
        message.starts_with("pinned to 1.1.0 (shop-1-1-0), which failed here ("),
        "{message}"
    );
    let deploys = sim.timeline.iter().filter(|e| e.kind == "Pinned").count();
    assert_eq!(deploys, 1, "a failed pinned release is not deployed again");
}

fn env_message(sim: &Simulation, env: &str) -> Option<String> {
    sim.status()
        .environments
        .iter()
        .find(|e| e.name == env)
        .and_then(|e| e.message.clone())
}

#[test]
fn a_field_manager_that_keeps_setting_the_images_back_is_a_fight_not_a_loop() {
    let mut sim = sim_with(PIPELINE, &[]);
    sim.add_release(release("1.0.0", "main"), t0());
    run_to(&mut sim, 60);
    let prod_api = greenlight::engine::WorkloadRef {
        cluster: None,
        kind: greenlight::engine::WorkloadKind::Deployment,
        namespace: "shop-prod".into(),
        name: "api".into(),
    };
    let from_git = greenlight::engine::ContainerImage {
        container: "api".into(),
        image: "registry.example.com/shop/api:0.9.0".into(),
    };
    // Argo CD's self-heal sets the Git image back every two minutes.
    for i in 0..4 {
        let releases = sim.visible_releases();
        sim.world.set_image_as(
            &prod_api,
            from_git.clone(),
            "argocd-controller",
            sim.now,
            &releases,
        );
        run_to(&mut sim, 61 + 2 * i);
    }
    let repairs = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "DriftRepaired")
        .count();
    assert_eq!(repairs, 3, "three repairs, then no more");
    let fight = sim
        .timeline
        .iter()
        .find(|e| e.kind == "DriftFight")
        .expect("an Event names the fight");
    assert!(
        fight.message.starts_with(
            "not repairing drift in prod: field manager argocd-controller set the images back 3 times within 10m"
        ),
        "{}",
        fight.message
    );
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:0.9.0",
        "left as the other manager set it"
    );
    let fighting = condition(&sim, "DriftFight").unwrap();
    assert_eq!(fighting.0, "True", "{}", fighting.1);
    run_to(&mut sim, 90);
    assert_eq!(
        sim.timeline
            .iter()
            .filter(|e| e.kind == "DriftRepaired")
            .count(),
        3,
        "still no repair while the fight stands"
    );

    // A person fixed Argo CD and asks for a retry: repair resumes.
    sim.add_approval(
        approval("fixed", "shop-1-0-0", "prod", Decision::Retry, "alice"),
        minutes(90),
    );
    run_to(&mut sim, 91);
    sim.reconcile(&mut |_| {});
    run_to(&mut sim, 92);
    assert_eq!(
        image(&sim, "shop-prod"),
        "registry.example.com/shop/api:1.0.0"
    );
    assert_eq!(condition(&sim, "DriftFight").unwrap().0, "False");
    assert!(
        sim.status()
            .overrides
            .iter()
            .any(|o| o.decision == Decision::Retry && o.approval == "fixed")
    );
}
