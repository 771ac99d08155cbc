//! `greenlight simulate` as a release manager runs it.

use std::process::Command;

fn simulate(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .arg("simulate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text =
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap();
    (output.status.success(), text)
}

const NIGHTLY: [&str; 6] = [
    "-f",
    "examples/nightly-smoke-promotion/",
    "--start",
    "2026-11-21T09:00:00Z",
    "--until",
    "2d",
];

#[test]
fn the_nightly_example_says_when_the_build_reaches_main() {
    let (ok, out) = simulate(&NIGHTLY);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "main         2026.11.21-0945 waits for schedule until Sun 2026-11-22 02:00:00 UTC"
        ),
        "{out}"
    );
    assert!(out.contains("Sun 2026-11-22 02:15:31 UTC  main         deploying 2026.11.21-0945 to main (gates passed: checks, schedule, metrics, tests)"), "{out}");
    assert!(
        out.contains(
            "2026.11.21-0945 (sanctum-20261121-0945): reached main at Sun 2026-11-22 02:26:01 UTC"
        ),
        "{out}"
    );
}

#[test]
fn a_failure_shows_the_verification_failure_and_the_rollback() {
    let mut args = NIGHTLY.to_vec();
    args.extend(["--fail", "2026.11.21-0945@main:health"]);
    let (ok, out) = simulate(&args);
    assert!(ok, "{out}");
    assert!(
        out.contains("2026.11.21-0945 failed verification in main: health check http[0] failed"),
        "{out}"
    );
    assert!(
        out.contains("rolling main back to the baseline images"),
        "{out}"
    );
    assert!(
        out.contains("main restored to the baseline images"),
        "{out}"
    );
    assert!(out.contains("Failed in main"), "{out}");
}

#[test]
fn the_timeline_is_available_as_json() {
    let mut args = NIGHTLY.to_vec();
    args.extend(["--output", "json"]);
    let (ok, out) = simulate(&args);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let releases = json["releases"].as_array().unwrap();
    let nightly = releases
        .iter()
        .find(|r| r["version"] == "2026.11.21-0945")
        .unwrap();
    assert_eq!(
        nightly["healthy"][1],
        serde_json::json!({"environment": "main", "at": "2026-11-22T02:26:01Z"})
    );
    assert!(
        json["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "PromotionStarted")
    );
}

#[test]
fn the_same_input_gives_the_same_timeline() {
    assert_eq!(simulate(&NIGHTLY).1, simulate(&NIGHTLY).1);
}

#[test]
fn approvals_on_the_command_line_count() {
    let base = [
        "-f",
        "examples/feature-release-tag/",
        "--start",
        "2026-11-21T09:00:00Z",
        "--until",
        "3h",
    ];
    let (_, without) = simulate(&base);
    assert!(
        without.contains(
            "1.2.0 (backend-1-2-0): reached no environment; Waiting in prod: waiting for approval"
        ),
        "{without}"
    );
    let mut approved = base.to_vec();
    approved.extend(["--approve", "backend-1-2-0@prod:lee"]);
    let (_, with) = simulate(&approved);
    assert!(
        with.contains("1.2.0 (backend-1-2-0): reached prod at"),
        "{with}"
    );
}

#[test]
fn bad_arguments_and_broken_manifests_are_refused_clearly() {
    let (ok, out) = simulate(&[
        "-f",
        "examples/nightly-smoke-promotion/",
        "--fail",
        "1.0@main:explode",
    ]);
    assert!(!ok);
    assert!(
        out.contains(
            "unknown failure \"explode\": expected rollout, health, test, metric or pre-deploy"
        ),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), "apiVersion: greenlight.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: x}\nspec: {environments: []}\n").unwrap();
    let (ok, out) = simulate(&["-f", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("the manifests have errors; fix them first"),
        "{out}"
    );
}

#[test]
fn the_readme_excerpt_is_what_the_first_command_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let excerpt = readme
        .split("```text\n")
        .nth(1)
        .expect("README has a text excerpt")
        .split("```")
        .next()
        .unwrap();
    let (ok, out) = simulate(&NIGHTLY);
    assert!(ok);
    for line in excerpt.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            out.contains(line),
            "README line not in the output of the first command:\n{line}\n---\n{out}"
        );
    }
}
