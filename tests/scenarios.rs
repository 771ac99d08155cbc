//! Each seed workflow, played through the real engine in the simulator, does what its
//! document says.

#[path = "support/examples.rs"]
mod examples;

use examples::{START, example, healthy_at};
use greenlight::{
    api::{Decision, ReleaseEnvironmentState as State, ReleasePhase},
    sim::{Options, Request, Simulation, load},
};
use jiff::Timestamp;

fn run(sim: &mut Simulation, hours: u64) {
    sim.run_for(std::time::Duration::from_secs(hours * 3600), &mut |_| {});
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn state(sim: &Simulation, release: &str, environment: &str) -> Option<State> {
    sim.release_status(release)?
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

// Seed 003: nightly smoke-tested promotion.

#[test]
fn nightly_promotion_starts_in_the_2am_utc_window_after_the_smoke_tests_pass() {
    let mut sim = example("nightly-smoke-promotion", &[], &[]).simulation;
    run(&mut sim, 48);
    let reached =
        healthy_at(&sim, "2026.11.21-0945", "main").expect("the nightly build reaches main");
    assert!(
        reached > at("2026-11-22T02:00:00Z") && reached < at("2026-11-22T03:00:00Z"),
        "reached main at {reached}"
    );
    let started = sim
        .timeline
        .iter()
        .find(|e| e.kind == "PromotionStarted" && e.environment.as_deref() == Some("main"))
        .unwrap();
    assert!(
        started.at >= at("2026-11-22T02:15:00Z"),
        "the 15 minute soak test runs first: {}",
        started.at
    );
    assert!(started.message.contains("tests"), "{}", started.message);
    assert_eq!(
        state(&sim, "sanctum-20261120-1712", "staging"),
        Some(State::Superseded),
        "the older staging build is superseded"
    );
}

#[test]
fn a_failing_soak_test_blocks_promotion_night_after_night() {
    let mut sim = example(
        "nightly-smoke-promotion",
        &["2026.11.21-0945@main:test"],
        &[],
    )
    .simulation;
    run(&mut sim, 72);
    assert_eq!(healthy_at(&sim, "2026.11.21-0945", "main"), None);
    assert_eq!(runs(&sim, "main"), None, "main still runs its baseline");
    assert_eq!(
        runs(&sim, "staging").as_deref(),
        Some("2026.11.21-0945"),
        "staging stays ahead of main"
    );
    let status = sim.release_status("sanctum-20261121-0945").unwrap();
    let main = status
        .environments
        .iter()
        .find(|e| e.name == "main")
        .unwrap();
    assert_eq!(main.state, State::Waiting);
    assert!(
        main.blocked_by
            .iter()
            .any(|b| b.gate == "tests" && b.reason.contains("failed")),
        "{:?}",
        main.blocked_by
    );
    // The blocked time grows: the wait started when it first became a candidate and never reset.
    let since = main.since.clone().expect("waiting since").0;
    assert!(since < at("2026-11-21T10:00:00Z"), "waiting since {since}");
    let starts = sim
        .timeline
        .iter()
        .filter(|e| e.kind == "PromotionStarted" && e.environment.as_deref() == Some("main"))
        .count();
    assert_eq!(starts, 0, "a failed gate test is not retried by itself");
}

#[test]
fn promote_now_skips_the_nightly_window_but_nothing_else() {
    let mut loaded = example("nightly-smoke-promotion", &[], &[]);
    let sim = &mut loaded.simulation;
    let spec = greenlight::api::ApprovalSpec {
        release: "sanctum-20261121-0945".into(),
        environment: "main".into(),
        decision: greenlight::api::Decision::PromoteNow,
        approver: "noor".into(),
        groups: vec![],
        comment: Some("trigger the nightly tests manually".into()),
    };
    sim.add_approval(
        greenlight::api::Approval::new("promote-now", spec),
        at("2026-11-21T12:00:00Z"),
    );
    run(sim, 12);
    let reached = healthy_at(sim, "2026.11.21-0945", "main").expect("promoted the same day");
    assert!(reached < at("2026-11-21T13:00:00Z"), "{reached}");
    let record = sim
        .status()
        .overrides
        .iter()
        .find(|o| o.decision == Decision::PromoteNow)
        .expect("the override is recorded");
    assert_eq!(record.requested_by, "noor");
}

#[test]
fn a_release_failing_in_main_is_rolled_back_to_what_ran_before() {
    let mut sim = example(
        "nightly-smoke-promotion",
        &["2026.11.21-0945@main:health"],
        &[],
    )
    .simulation;
    run(&mut sim, 24);
    assert_eq!(
        state(&sim, "sanctum-20261121-0945", "main"),
        Some(State::Failed)
    );
    let main = sim
        .status()
        .environments
        .iter()
        .find(|e| e.name == "main")
        .unwrap();
    assert_eq!(main.current, None, "back on the baseline");
    assert!(sim.timeline.iter().any(|e| e.kind == "RollbackSucceeded"));
    let images: Vec<String> = sim
        .world
        .workloads()
        .iter()
        .filter(|d| d.namespace == "sanctum-prod")
        .map(|d| d.containers[0].image.clone())
        .collect();
    assert!(
        images.iter().all(|i| i.ends_with(":baseline")),
        "{images:?}"
    );
}

// Seed 002: GitFlow with the two-person rule.

#[test]
fn prod_needs_two_different_people() {
    // The example's approvals.yaml holds two approvals; without them, one person is not enough.
    let mut loaded = example("gitflow-two-person-rule", &[], &[]);
    run(&mut loaded.simulation, 30);
    let reached =
        healthy_at(&loaded.simulation, "2026.11.21", "prod").expect("two engineers approved");
    assert!(
        reached >= at("2026-11-22T01:00:00Z") && reached < at("2026-11-22T02:00:00Z"),
        "in the 1 AM window: {reached}"
    );

    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "{}/examples/gitflow-two-person-rule",
        env!("CARGO_MANIFEST_DIR")
    );
    for file in ["pipeline.yaml", "releases.yaml"] {
        std::fs::copy(format!("{source}/{file}"), dir.path().join(file)).unwrap();
    }
    let one_approver = Request {
        files: vec![dir.path().to_path_buf()],
        pipeline: None,
        start: START.parse().unwrap(),
        failures: vec![],
        approvals: vec![
            ("mlops-2026-11-21".into(), "prod".into(), "amara".into()),
            ("mlops-2026-11-21".into(), "prod".into(), "amara".into()),
            ("mlops-2026-11-21".into(), "prod".into(), "tomas".into()),
        ],
    };
    let mut sim = load(&one_approver, Options::default()).unwrap().simulation;
    run(&mut sim, 30);
    assert_eq!(
        healthy_at(&sim, "2026.11.21", "prod"),
        None,
        "amara twice and the author are not two people"
    );
    let prod = sim
        .release_status("mlops-2026-11-21")
        .unwrap()
        .environments
        .iter()
        .find(|e| e.name == "prod")
        .cloned()
        .unwrap();
    assert!(
        prod.blocked_by
            .iter()
            .any(|b| b.gate == "approvals"
                && b.reason.contains("needs 2 distinct approvers (amara)")),
        "{:?}",
        prod.blocked_by
    );
}

// Seed 001: feature / release / tag with migrations and automatic rollback.

#[test]
fn a_release_candidate_failing_e2e_in_staging_is_rolled_back_and_never_reaches_prod() {
    let mut loaded = example(
        "feature-release-tag",
        &["1.2.0-rc1@staging:test"],
        &["backend-1-2-0-rc1@prod:lee"],
    );
    run(&mut loaded.simulation, 24);
    let sim = &loaded.simulation;
    assert_eq!(
        state(sim, "backend-1-2-0-rc1", "staging"),
        Some(State::Failed)
    );
    assert_eq!(healthy_at(sim, "1.2.0-rc1", "prod"), None);
    assert!(
        state(sim, "backend-1-2-0-rc1", "prod").is_none(),
        "a failed release is never a candidate downstream"
    );
    assert_eq!(
        sim.release_status("backend-1-2-0-rc1").unwrap().phase,
        Some(ReleasePhase::Failed)
    );
}

#[test]
fn a_failed_migration_stops_the_deploy_before_any_image_changes() {
    let mut loaded = example(
        "feature-release-tag",
        &["1.3.0-new-auth.17@dev:pre-deploy"],
        &[],
    );
    run(&mut loaded.simulation, 2);
    let sim = &loaded.simulation;
    assert_eq!(
        state(sim, "backend-feature-new-auth-17", "dev"),
        Some(State::Failed)
    );
    assert!(
        !sim.world.image_changes.contains_key("rupaya-dev/backend"),
        "dev's images were never touched: {:?}",
        sim.world.image_changes
    );
    assert!(
        !sim.timeline.iter().any(|e| e.kind == "RollbackStarted"),
        "nothing to roll back"
    );
}

#[test]
fn a_version_tag_enters_prod_directly_once_approved() {
    let mut loaded = example("feature-release-tag", &[], &["backend-1-2-0@prod:lee"]);
    run(&mut loaded.simulation, 2);
    assert!(healthy_at(&loaded.simulation, "1.2.0", "prod").is_some());
    let mut unapproved = example("feature-release-tag", &[], &[]);
    run(&mut unapproved.simulation, 24);
    assert_eq!(
        healthy_at(&unapproved.simulation, "1.2.0", "prod"),
        None,
        "prod needs a release manager"
    );
}

// Seed 000: master is always green.

#[test]
fn a_release_that_fails_staging_never_reaches_production() {
    let mut loaded = example("maga-gitflow", &["2.7.0@staging:test"], &[]);
    run(&mut loaded.simulation, 48);
    let sim = &loaded.simulation;
    assert_eq!(
        state(sim, "storefront-2-7-0", "staging"),
        Some(State::Failed)
    );
    assert_eq!(healthy_at(sim, "2.7.0", "production"), None);
}

#[test]
fn a_hotfix_with_all_checks_and_both_signoffs_goes_straight_to_production() {
    let mut loaded = example("maga-gitflow", &[], &[]);
    run(&mut loaded.simulation, 2);
    let sim = &loaded.simulation;
    assert!(
        healthy_at(sim, "2.6.1", "production").is_some(),
        "QA and a stakeholder approved the hotfix"
    );
    // 2.7.0 is still missing its security scan: it stays in staging.
    assert_eq!(healthy_at(sim, "2.7.0", "production"), None);
    let production = sim
        .release_status("storefront-2-7-0")
        .unwrap()
        .environments
        .iter()
        .find(|e| e.name == "production")
        .cloned();
    assert!(production.is_none_or(|p| p.state != State::Healthy));
}

// Seed 004: GitHub Flow with manual approval.

#[test]
fn production_waits_for_a_maintainer_and_gets_the_same_artifacts() {
    let mut loaded = example("github-flow-manual-approval", &[], &[]);
    run(&mut loaded.simulation, 3);
    let sim = &loaded.simulation;
    assert!(
        healthy_at(sim, "0.9.1", "production").is_some(),
        "approved by sam in approvals.yaml"
    );
    assert_eq!(
        healthy_at(sim, "0.9.0", "production"),
        None,
        "0.9.0 was never approved for production"
    );
    let api = sim
        .world
        .workloads()
        .into_iter()
        .find(|d| d.namespace == "kitchen-prod" && d.name == "api")
        .unwrap();
    let staging_api = sim
        .world
        .workloads()
        .into_iter()
        .find(|d| d.namespace == "kitchen-staging" && d.name == "api")
        .unwrap();
    assert_eq!(
        api.containers, staging_api.containers,
        "production runs exactly what staging verified"
    );
}
