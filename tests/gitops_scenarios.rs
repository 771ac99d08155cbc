//! The GitOps variants of the seed workflows, played through the real engine in the
//! simulator: each environment's images live in an in-memory repository that Greenlight
//! commits to, applied (as Argo CD or Flux would) after a delay.

#[path = "support/examples.rs"]
mod examples;

use examples::{example, healthy_at};
use greenlight::sim::{Simulation, baseline_image};

fn run(sim: &mut Simulation, minutes: u64) {
    sim.run_for(std::time::Duration::from_secs(minutes * 60), &mut |_| {});
}

/// The images of a release, by artifact.
fn release_images(sim: &Simulation, release: &str) -> std::collections::BTreeMap<String, String> {
    sim.visible_releases()
        .into_iter()
        .find(|r| r.name == release)
        .unwrap()
        .spec
        .artifacts
        .into_iter()
        .collect()
}

fn environment<'a>(sim: &'a Simulation, name: &str) -> &'a greenlight::api::EnvironmentStatus {
    sim.status()
        .environments
        .iter()
        .find(|e| e.name == name)
        .unwrap()
}

#[test]
fn seed_002_promotes_by_commits_that_argo_cd_applies() {
    let mut loaded = example("gitops-gitflow-two-person-rule", &[], &[]);
    let sim = &mut loaded.simulation;
    run(sim, 30 * 60);
    let reached = healthy_at(sim, "2026.11.21", "prod").expect("two engineers approved");
    assert!(
        reached >= "2026-11-22T01:00:00Z".parse().unwrap()
            && reached < "2026-11-22T02:00:00Z".parse().unwrap(),
        "in the 1 AM window: {reached}"
    );
    let prod = sim.world.repo("prod").unwrap();
    assert_eq!(prod.head_images(), &release_images(sim, "mlops-2026-11-21"));
    assert_eq!(
        prod.applied_images(),
        prod.head_images(),
        "Argo CD applied it"
    );
}

#[test]
fn seed_003_promotes_staging_to_main_by_a_commit_in_the_nightly_window() {
    let mut loaded = example("gitops-nightly-smoke-promotion", &[], &[]);
    let sim = &mut loaded.simulation;
    run(sim, 48 * 60);
    let reached = healthy_at(sim, "2026.11.21-0945", "main").expect("the nightly suite passed");
    assert!(
        reached >= "2026-11-22T02:00:00Z".parse().unwrap(),
        "not before the 2 AM window: {reached}"
    );
    let main = sim.world.repo("main").unwrap();
    assert_eq!(
        main.head_images(),
        &release_images(sim, "sanctum-20261121-0945")
    );
}

#[test]
fn a_release_flux_reports_failed_is_rolled_back_by_a_commit() {
    let mut loaded = example(
        "gitops-nightly-smoke-promotion",
        &["2026.11.21-0945@main:rollout"],
        &[],
    );
    let sim = &mut loaded.simulation;
    run(sim, 48 * 60);
    assert_eq!(healthy_at(sim, "2026.11.21-0945", "main"), None);
    assert!(
        sim.timeline
            .iter()
            .any(|e| e.kind == "RollbackStarted" && e.environment.as_deref() == Some("main")),
        "main rolled back"
    );
    let main = sim.world.repo("main").unwrap();
    for (artifact, image) in main.head_images() {
        assert_eq!(
            image,
            &baseline_image(artifact),
            "back to the images before"
        );
    }
}

#[test]
fn a_persons_commit_holds_the_environment_until_it_is_reverted() {
    let mut loaded = example("gitops-nightly-smoke-promotion", &[], &[]);
    let sim = &mut loaded.simulation;
    run(sim, 60);
    assert!(healthy_at(sim, "2026.11.21-0945", "staging").is_some());
    let ours = release_images(sim, "sanctum-20261121-0945");
    let pinned = release_images(sim, "sanctum-20261120-1712");

    // Someone pins staging to the older build in Git.
    let now = sim.now;
    sim.world.repo_mut("staging").unwrap().commit_as_person(
        pinned.clone(),
        "Noor <noor@example.com>",
        "pin staging to 1712: incident 77",
        now,
        std::time::Duration::ZERO,
    );
    run(sim, 10);
    let staging = environment(sim, "staging");
    let hold = staging
        .git_change
        .as_ref()
        .expect("held for the person's commit");
    assert_eq!(hold.author, "Noor <noor@example.com>");
    assert!(
        staging
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("changed its images in Git"),
        "{:?}",
        staging.message
    );
    assert_eq!(
        sim.world.repo("staging").unwrap().head_images(),
        &pinned,
        "not overwritten"
    );
    assert!(
        sim.timeline
            .iter()
            .any(|e| e.kind == "ChangedInGit" && e.environment.as_deref() == Some("staging"))
    );

    // Reverted: the branch declares what Greenlight wrote, and the hold ends.
    let now = sim.now;
    sim.world.repo_mut("staging").unwrap().commit_as_person(
        ours.clone(),
        "Noor <noor@example.com>",
        "revert the pin",
        now,
        std::time::Duration::ZERO,
    );
    run(sim, 10);
    assert_eq!(environment(sim, "staging").git_change, None);
    assert!(
        sim.timeline
            .iter()
            .any(|e| e.kind == "ChangedInGitResolved")
    );
}

#[test]
fn a_retry_of_the_current_release_commits_it_again_over_a_persons_change() {
    let mut loaded = example("gitops-nightly-smoke-promotion", &[], &[]);
    let sim = &mut loaded.simulation;
    run(sim, 60);
    let ours = release_images(sim, "sanctum-20261121-0945");
    let pinned = release_images(sim, "sanctum-20261120-1712");
    let now = sim.now;
    sim.world.repo_mut("staging").unwrap().commit_as_person(
        pinned,
        "Noor <noor@example.com>",
        "pin staging to 1712",
        now,
        std::time::Duration::ZERO,
    );
    run(sim, 5);
    assert!(environment(sim, "staging").git_change.is_some());

    let retry: greenlight::api::Approval = serde_yaml::from_str(
        "apiVersion: greenlight.dev/v1alpha1\nkind: Approval\nmetadata: {name: retry-staging, namespace: sanctum-gitops}\n\
         spec: {release: sanctum-20261121-0945, environment: staging, decision: Retry, approver: amara}\n",
    )
    .unwrap();
    let at = sim.now + jiff::SignedDuration::from_secs(60);
    sim.add_approval(retry, at);
    run(sim, 10);
    assert_eq!(
        sim.world.repo("staging").unwrap().head_images(),
        &ours,
        "Greenlight committed the release again"
    );
    run(sim, 10);
    assert_eq!(
        environment(sim, "staging").git_change,
        None,
        "and the hold ended"
    );
    assert!(
        sim.status()
            .overrides
            .iter()
            .any(|o| o.requested_by == "amara" && o.environment == "staging"),
        "the retry is recorded"
    );
}
