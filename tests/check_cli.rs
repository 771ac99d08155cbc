//! `greenlight check` as a user runs it: every example passes, and each common mistake
//! gets exactly one clear line naming the file, the object, the field path and the fix.

use std::{path::Path, process::Command};

const PIPELINE: &str = r#"apiVersion: greenlight.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, namespace: shop}
spec:
  environments:
  - name: dev
    accepts: ["feature/*"]
    target: {namespace: shop-dev, deployments: [{name: api}]}
  - name: staging
    upstream: [dev]
    target: {namespace: shop-staging, deployments: [{name: api}]}
  - name: prod
    upstream: [staging]
    target: {namespace: shop-prod, deployments: [{name: api}, {name: worker}]}
    gates:
      soak: 15m
      approvals: [{name: release-managers, count: 2, groups: [release-managers]}]
      schedule:
      - {cron: "0 2 * * *", timeZone: UTC, duration: 1h}
      freeze:
      - {start: "2026-12-20T00:00:00Z", end: "2027-01-04T00:00:00Z"}
"#;

const RELEASE: &str = r#"apiVersion: greenlight.dev/v1alpha1
kind: Release
metadata: {name: shop-1-4-2, namespace: shop}
spec:
  pipeline: shop
  version: "1.4.2"
  artifacts:
    api: registry.example.com/shop/api@sha256:f9811b73ac5d1a8db842634fc0f871e03207ae44105fc9c2b7f1985e70f90d5a
    worker: registry.example.com/shop/worker:1.4.2
  source: {ref: feature/cart, commit: 3f2a9c1, author: alice}
"#;

struct Run {
    success: bool,
    stdout: String,
}

impl Run {
    fn error_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.contains(": error: "))
            .collect()
    }
}

fn check(args: &[&str], dir: &Path) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
    }
}

/// Checks the given files, written into a fresh directory.
fn check_files(files: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let run = check(&["-f", "."], dir.path());
    println!("{}", run.stdout);
    run
}

/// The pipeline with `from` replaced by `to`, checked on its own.
fn check_pipeline_with(from: &str, to: &str) -> Run {
    assert!(
        PIPELINE.contains(from),
        "test setup: {from:?} not in the pipeline"
    );
    check_files(&[("pipeline.yaml", &PIPELINE.replacen(from, to, 1))])
}

fn assert_one_error(run: &Run, expected: &str) {
    assert!(!run.success, "check must fail");
    let errors = run.error_lines();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error line, got:\n{}",
        run.stdout
    );
    assert!(
        errors[0].contains(expected),
        "expected {expected:?} in {:?}",
        errors[0]
    );
}

#[test]
fn every_example_passes() {
    let run = check(&["-f", "examples/"], Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(run.success, "{}", run.stdout);
    assert!(run.stdout.contains("7 Pipelines"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("0 errors, 0 warnings\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_base_case_of_these_tests_is_valid() {
    let run = check_files(&[("pipeline.yaml", PIPELINE), ("release.yaml", RELEASE)]);
    assert!(run.success, "{}", run.stdout);
    assert_eq!(
        run.stdout,
        "checked 2 files: 1 Pipeline, 1 Release; 0 errors, 0 warnings\n"
    );
}

#[test]
fn a_typo_in_a_field_name_suggests_the_right_one() {
    let run = check_pipeline_with("    upstream: [dev]", "    upsteam: [dev]");
    assert_one_error(
        &run,
        "./pipeline.yaml:10:5: Pipeline shop/shop: error: spec.environments[1].upsteam: unknown field \"upsteam\": did you mean \"upstream\"?",
    );
}

#[test]
fn a_wrong_type_names_the_expected_type() {
    let run = check_pipeline_with("count: 2", "count: \"two\"");
    assert_one_error(
        &run,
        "spec.environments[2].gates.approvals[0].count: expected an integer, found the string \"two\"",
    );
}

#[test]
fn an_approval_rule_no_one_can_satisfy_is_rejected_with_its_path() {
    let run = check_pipeline_with(
        "count: 2, groups: [release-managers]",
        "count: 3, users: [bob, carol]",
    );
    assert_one_error(
        &run,
        "./pipeline.yaml:17:44: Pipeline shop/shop: error: spec.environments[2].gates.approvals[0].count: approval rule \"release-managers\" needs 3 distinct approvers but lists only 2 users (bob, carol) and no groups: no release could ever be approved",
    );
    let enough = check_pipeline_with(
        "count: 2, groups: [release-managers]",
        "count: 2, users: [bob, carol]",
    );
    assert!(
        enough.success,
        "two of two listed users can approve: {}",
        enough.stdout
    );
}

#[test]
fn a_cycle_in_upstream_is_spelled_out() {
    let run = check_pipeline_with("    upstream: [dev]", "    upstream: [prod]");
    assert_one_error(
        &run,
        "spec.environments[1].upstream: upstream environments form a cycle: staging → prod → staging",
    );
}

#[test]
fn a_cron_expression_with_four_fields_is_named() {
    let run = check_pipeline_with("cron: \"0 2 * * *\"", "cron: \"0 2 * *\"");
    assert_one_error(
        &run,
        "spec.environments[2].gates.schedule[0].cron: \"0 2 * *\" is not a cron expression: expected 5 fields (minute hour day-of-month month day-of-week), found 4",
    );
}

#[test]
fn an_unknown_time_zone_is_named() {
    let run = check_pipeline_with("timeZone: UTC", "timeZone: Mars/Base");
    assert_one_error(
        &run,
        "spec.environments[2].gates.schedule[0].timeZone: \"Mars/Base\" is not an IANA time zone",
    );
}

#[test]
fn a_duration_in_words_shows_the_expected_form() {
    let run = check_pipeline_with("soak: 15m", "soak: 15 minutes");
    assert_one_error(
        &run,
        "spec.environments[2].gates.soak: \"15 minutes\" is not a duration: expected a duration such as 90s, 15m or 1h30m",
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let broken = PIPELINE
        .replacen("    upstream: [dev]", "    upsteam: [dev]", 1)
        .replacen("count: 2", "count: \"two\"", 1)
        .replacen("soak: 15m", "soak: 15 minutes", 1)
        .replacen("cron: \"0 2 * * *\"", "cron: \"0 2 * *\"", 1)
        .replacen("timeZone: UTC", "timeZone: Mars/Base", 1);
    let run = check_files(&[("pipeline.yaml", &broken)]);
    assert!(!run.success);
    assert_eq!(run.error_lines().len(), 5, "{}", run.stdout);
    assert!(
        run.stdout.ends_with("5 errors, 0 warnings\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_freeze_that_ends_before_it_starts_is_rejected() {
    let run = check_pipeline_with(
        "end: \"2027-01-04T00:00:00Z\"",
        "end: \"2026-12-01T00:00:00Z\"",
    );
    assert_one_error(
        &run,
        "spec.environments[2].gates.freeze[0].end: end 2026-12-01T00:00:00Z is not after start 2026-12-20T00:00:00Z",
    );
}

#[test]
fn duplicate_environment_names_point_at_the_first() {
    let run = check_pipeline_with("  - name: prod", "  - name: dev");
    assert!(run.stdout.contains("spec.environments[2].name: duplicate environment name \"dev\": already used by spec.environments[0]"), "{}", run.stdout);
}

#[test]
fn a_bad_accepts_glob_is_rejected() {
    let run = check_pipeline_with("accepts: [\"feature/*\"]", "accepts: [\"feature/[*\"]");
    assert_one_error(
        &run,
        "spec.environments[0].accepts[0]: \"feature/[*\" is not a valid glob",
    );
}

#[test]
fn a_typo_inside_a_job_template_is_found() {
    let with_job = PIPELINE.replacen(
        "    upstream: [dev]\n",
        "    upstream: [dev]\n    preDeploy:\n    - name: migrate\n      template:\n        template:\n          spec:\n            restartPolicy: Never\n            containers: [{name: m, image: shop/migrate:1, comand: [up]}]\n",
        1,
    );
    let run = check_files(&[("pipeline.yaml", &with_job)]);
    assert_one_error(
        &run,
        "spec.environments[1].preDeploy[0].template.template.spec.containers[0].comand: unknown field \"comand\": did you mean \"command\"?",
    );
}

#[test]
fn a_release_missing_an_artifact_of_its_pipeline_is_rejected() {
    let release = RELEASE.replacen(
        "    worker: registry.example.com/shop/worker:1.4.2\n",
        "",
        1,
    );
    let run = check_files(&[("pipeline.yaml", PIPELINE), ("release.yaml", &release)]);
    assert_one_error(
        &run,
        "./release.yaml:7:3: Release shop/shop-1-4-2: error: spec.artifacts: missing artifact \"worker\", which Pipeline \"shop\" deploys to prod/worker",
    );
}

#[test]
fn a_release_that_enters_nowhere_gets_a_warning_not_an_error() {
    let release = RELEASE.replacen("ref: feature/cart", "ref: main", 1);
    let run = check_files(&[("pipeline.yaml", PIPELINE), ("release.yaml", &release)]);
    assert!(run.success, "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "warning: spec.source.ref: \"main\" matches no environment's accepts (feature/*)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn an_approval_for_an_unknown_environment_suggests_the_closest() {
    let approval = "apiVersion: greenlight.dev/v1alpha1\nkind: Approval\nmetadata: {name: a1, namespace: shop}\nspec: {release: shop-1-4-2, environment: prd, decision: Approve, approver: bob}\n";
    let run = check_files(&[
        ("pipeline.yaml", PIPELINE),
        ("release.yaml", RELEASE),
        ("approval.yaml", approval),
    ]);
    assert_one_error(
        &run,
        "spec.environment: Pipeline \"shop\" has no environment \"prd\": did you mean \"prod\"?",
    );
}

#[test]
fn an_approval_decision_must_be_a_known_one() {
    let approval = "apiVersion: greenlight.dev/v1alpha1\nkind: Approval\nmetadata: {name: a1}\nspec: {release: r, environment: prod, decision: Approved, approver: bob}\n";
    let run = check_files(&[("approval.yaml", approval)]);
    assert_one_error(
        &run,
        "spec.decision: \"Approved\" is not one of Approve, Reject, PromoteNow, Retry, Rollback, PromoteStep, AbortCanary (did you mean \"Approve\"?)",
    );
}

#[test]
fn an_unknown_kind_and_a_wrong_version_are_named() {
    let doc = "apiVersion: greenlight.dev/v1\nkind: Pipelines\nmetadata: {name: x}\nspec: {}\n";
    let run = check_files(&[("x.yaml", doc)]);
    assert!(!run.success);
    assert!(
        run.stdout.contains(
            "apiVersion: \"greenlight.dev/v1\" is not served: expected greenlight.dev/v1alpha1"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "kind: unknown kind \"Pipelines\" in greenlight.dev: did you mean \"Pipeline\"?"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn other_kubernetes_objects_are_skipped() {
    let doc = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{PIPELINE}");
    let run = check_files(&[("all.yaml", &doc)]);
    assert!(run.success, "{}", run.stdout);
    assert!(
        run.stdout.contains("(1 other documents skipped)"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_yaml_syntax_error_names_the_line() {
    let doc = format!("{PIPELINE}---\nkind: Release\nspec:\n  version: 1\n   pipeline: x\n");
    let run = check_files(&[("bad.yaml", &doc)]);
    assert!(!run.success);
    let errors = run.error_lines();
    assert_eq!(errors.len(), 1, "{}", run.stdout);
    assert!(
        errors[0].starts_with("./bad.yaml:23: error: invalid YAML: line 26"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let run = check_files(&[]);
    assert!(run.success, "an empty directory has nothing wrong in it");
    let dir = tempfile::tempdir().unwrap();
    let run = check(&["-f", "nope.yaml"], dir.path());
    assert!(!run.success);
    assert!(
        run.stdout
            .starts_with("nope.yaml: error: no such file or directory"),
        "{}",
        run.stdout
    );
}

#[test]
fn standard_input_is_read_with_a_dash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["check", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            PIPELINE
                .replace("timeZone: UTC", "timeZone: Europe/Berln")
                .as_bytes(),
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success());
    assert!(stdout.contains("-:19:29: Pipeline shop/shop: error: spec.environments[2].gates.schedule[0].timeZone: \"Europe/Berln\" is not an IANA time zone: did you mean \"Europe/Berlin\"?"), "{stdout}");
}

#[test]
fn an_unknown_workload_kind_lists_the_kinds_there_are() {
    let run = check_pipeline_with(
        "deployments: [{name: api}, {name: worker}]",
        "deployments: [{name: api}], workloads: [{kind: ReplicaSet, name: worker}]",
    );
    assert_one_error(
        &run,
        "spec.environments[2].target.workloads[0].kind: \"ReplicaSet\" is not one of Deployment, StatefulSet, DaemonSet, CronJob",
    );
}

#[test]
fn a_release_missing_the_artifact_of_a_statefulset_names_it() {
    let pipeline = PIPELINE.replacen(
        "deployments: [{name: api}, {name: worker}]",
        "deployments: [{name: api}], workloads: [{kind: StatefulSet, name: queue, artifact: worker}, {kind: CronJob, name: report}]",
        1,
    );
    let run = check_files(&[("pipeline.yaml", &pipeline), ("release.yaml", RELEASE)]);
    assert_one_error(
        &run,
        "missing artifact \"report\", which Pipeline \"shop\" deploys to prod/CronJob report",
    );
}
