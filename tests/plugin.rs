//! The kubectl plugin end to end: the real binary, run under the file name
//! `kubectl-greenlight` (a symlink, as users install it), with a kubeconfig pointing at the
//! fake API server. The Pipeline and Release statuses it reads come from the real engine:
//! the GitFlow example simulated for an hour or three, then stored in the fake server.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use greenlight::{
    api::{Pipeline, Release},
    sim::{Failure, Options, Request, load},
};
use http::Method;
use jiff::Timestamp;
use regex::Regex;
use serde_json::{Value, json};
use support::fake_api::FakeApi;

const NAMESPACE: &str = "mlops";
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/gitflow-two-person-rule"
);
const APPROVALS: &str = "/apis/greenlight.dev/v1alpha1/namespaces/mlops/approvals";

/// The plugin installed in a temporary directory, and a kubeconfig for the fake server.
struct Plugin {
    dir: tempfile::TempDir,
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Plugin {
    fn install(api: &FakeApi) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let program = dir.path().join("kubectl-greenlight");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_greenlight"), &program)
            .expect("a symlink to the binary");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters:\n- name: fake\n  cluster: {{server: \"{url}\"}}\n\
                 users:\n- name: amara\n  user: {{token: not-checked}}\n\
                 contexts:\n\
                 - name: fake\n  context: {{cluster: fake, user: amara, namespace: {NAMESPACE}}}\n\
                 - name: elsewhere\n  context: {{cluster: fake, user: amara, namespace: other}}\n\
                 current-context: fake\n",
                url = api.url
            ),
        )
        .expect("the kubeconfig is written");
        Self {
            dir,
            program,
            kubeconfig,
        }
    }

    /// Runs `kubectl-greenlight ARGS` with `$KUBECONFIG` set (and `$COLUMNS`, if given).
    async fn run_with(&self, args: &[&str], columns: Option<usize>) -> Output {
        let mut command = std::process::Command::new(&self.program);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("COLUMNS");
        if let Some(columns) = columns {
            command.env("COLUMNS", columns.to_string());
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the blocking task ran")
            .expect("the plugin started");
        eprintln!(
            "$ kubectl-greenlight {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None).await
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Simulates the GitFlow example up to now, starting `hours` ago, and stores the Pipeline
/// and Releases with the statuses the engine wrote. `failures` are injected as in
/// `greenlight simulate --fail`.
fn seed(api: &FakeApi, hours: i64, failures: &[&str]) {
    let now = Timestamp::now().as_second();
    let start = Timestamp::from_second(now - now % 60 - hours * 3600).unwrap();
    let failures: Vec<Failure> = failures.iter().map(|f| f.parse().unwrap()).collect();
    let files = vec![
        Path::new(EXAMPLE).join("pipeline.yaml"),
        Path::new(EXAMPLE).join("releases.yaml"),
    ];
    let request = Request {
        files: files.clone(),
        pipeline: None,
        start,
        failures: failures.clone(),
        approvals: vec![],
    };
    let options = Options {
        failures,
        ..Options::default()
    };
    let mut loaded = load(&request, options).expect("the example loads");
    loaded
        .simulation
        .run_for(Duration::from_secs(hours as u64 * 3600), &mut |_| {});
    let simulation = &loaded.simulation;

    let pipeline: Pipeline =
        serde_yaml::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let mut pipeline = serde_json::to_value(pipeline).unwrap();
    pipeline["status"] = serde_json::to_value(simulation.status()).unwrap();
    api.put(pipeline);

    let text = std::fs::read_to_string(&files[1]).unwrap();
    // As the simulation does: releases without a creation time arrive a minute apart.
    for (i, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let release: Release = serde::Deserialize::deserialize(document).unwrap();
        let name = release.metadata.name.clone().unwrap();
        let mut release = serde_json::to_value(release).unwrap();
        release["metadata"]["creationTimestamp"] =
            json!((start + jiff::SignedDuration::from_mins(i as i64)).to_string());
        if let Some(status) = simulation.release_status(&name) {
            release["status"] = serde_json::to_value(status).unwrap();
        }
        api.put(release);
    }
}

fn approvals(api: &FakeApi) -> Vec<Value> {
    api.list("greenlight.dev/v1alpha1", "Approval")
}

fn approval_posts(api: &FakeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == Method::POST && r.path == APPROVALS)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_creates_an_approval_as_the_caller_with_only_the_groups_the_rules_name() {
    let api = FakeApi::start(false).await;
    api.set_identity("amara", &["system:authenticated", "devops", "sre"]);
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);

    let args = [
        "approve",
        "mlops-2026-11-21",
        "--env",
        "prod",
        "--comment",
        "Prod plan reviewed: 2 to add",
    ];
    let output = plugin.run(&args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "approval mlops-2026-11-21-prod-approve-amara created: amara approves mlops-2026-11-21 \
         (2026.11.21) for prod (as devops)\n"
    );
    assert_eq!(
        stderr(&output),
        "",
        "no warning for an approver the rules name"
    );
    let stored = api
        .get(
            "greenlight.dev/v1alpha1",
            "Approval",
            NAMESPACE,
            "mlops-2026-11-21-prod-approve-amara",
        )
        .expect("the Approval was created");
    assert_eq!(
        stored["spec"],
        json!({
            "release": "mlops-2026-11-21",
            "environment": "prod",
            "decision": "Approve",
            "approver": "amara",
            "groups": ["devops"],
            "comment": "Prod plan reviewed: 2 to add",
        })
    );
    // The identity came from the API server, asked once.
    let reviews: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .collect();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].method, Method::POST);
    assert_eq!(reviews[0].body["kind"], "SelfSubjectReview");

    // Running it again finds the same Approval and succeeds.
    let again = plugin.run(&args).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        stdout(&again),
        "approval mlops-2026-11-21-prod-approve-amara already exists: amara approves \
         mlops-2026-11-21 (2026.11.21) for prod (as devops)\n"
    );
    assert_eq!(approvals(&api).len(), 1);

    // A different comment cannot change an Approval.
    let changed = plugin
        .run(&[
            "approve",
            "mlops-2026-11-21",
            "--env",
            "prod",
            "--comment",
            "other",
        ])
        .await;
    assert_eq!(changed.status.code(), Some(1));
    assert_eq!(stdout(&changed), "");
    let message = stderr(&changed);
    assert!(
        message.starts_with(
            "error: approval mlops-2026-11-21-prod-approve-amara in namespace mlops already \
             exists with a different spec (comment \"Prod plan reviewed: 2 to add\" there, \
             \"other\" asked)"
        ),
        "{message}"
    );
    assert!(
        message.contains("kubectl delete approval mlops-2026-11-21-prod-approve-amara -n mlops"),
        "{message}"
    );
    assert_eq!(approvals(&api).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_promote_now_record_their_decisions() {
    let api = FakeApi::start(false).await;
    api.set_identity("jun", &["system:authenticated", "devops"]);
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);

    let output = plugin
        .run(&[
            "reject",
            "mlops-2026-11-21",
            "-e",
            "prod",
            "--comment",
            "CAB said no",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "approval mlops-2026-11-21-prod-reject-jun created: jun rejects mlops-2026-11-21 \
         (2026.11.21) for prod (as devops)\n"
    );

    let refused = plugin
        .run(&["promote", "mlops-2026-11-21", "--env", "prod"])
        .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("promote needs --now"),
        "{}",
        stderr(&refused)
    );

    let output = plugin
        .run(&["promote", "mlops-2026-11-21", "--env", "prod", "--now"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "approval mlops-2026-11-21-prod-promote-now-jun created: jun asks to promote \
         mlops-2026-11-21 (2026.11.21) to prod now: it ignores only the schedule gate, every \
         other gate still applies (as devops)\n"
    );

    let mut specs: Vec<Value> = approvals(&api)
        .into_iter()
        .map(|a| a["spec"].clone())
        .collect();
    specs.sort_by_key(|s| s["decision"].as_str().unwrap().to_owned());
    assert_eq!(
        specs,
        [
            json!({"release": "mlops-2026-11-21", "environment": "prod", "decision": "PromoteNow",
                   "approver": "jun", "groups": ["devops"]}),
            json!({"release": "mlops-2026-11-21", "environment": "prod", "decision": "Reject",
                   "approver": "jun", "groups": ["devops"], "comment": "CAB said no"}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_outside_the_rules_is_warned_and_claims_no_group() {
    let api = FakeApi::start(false).await;
    api.set_identity("tomas", &["system:authenticated", "developers"]);
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);

    let output = plugin
        .run(&["approve", "mlops-2026-11-21", "--env", "prod"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "warning: tomas is in none of the groups and is none of the users that prod's approval \
         rules name (devops): this approval will not count\n\
         warning: tomas is the release's author and prod does not allow self-approval: this \
         approval will not count\n"
    );
    let stored = &approvals(&api)[0];
    assert_eq!(stored["spec"]["approver"], "tomas");
    assert_eq!(stored["spec"].get("groups"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_environments_and_releases_are_named_with_what_exists() {
    let api = FakeApi::start(false).await;
    api.set_identity("amara", &["devops"]);
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);

    let output = plugin
        .run(&["approve", "mlops-2026-11-21", "--env", "production"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: Pipeline mlops-platform has no environment \"production\"; its environments \
         are: dev, stage, prod\n"
    );

    let output = plugin
        .run(&["approve", "mlops-2026-11-21", "--env", "stag"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no environment \"stag\" (did you mean \"stage\"?)"),
        "{}",
        stderr(&output)
    );

    let output = plugin
        .run(&["approve", "mlops-2026-11-22", "--env", "prod"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no Release \"mlops-2026-11-22\" in namespace mlops (did you mean \
         \"mlops-2026-11-21\"?); Releases there: mlops-2026-11-21, mlops-2026-11-20, \
         mlops-add-analytics-dataset-3\n"
    );

    let output = plugin.run(&["status", "mlops"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no Pipeline \"mlops\" in namespace mlops; Pipelines there: mlops-platform\n"
    );
    assert_eq!(
        approval_posts(&api),
        0,
        "nothing is created after a failed check"
    );
    assert!(approvals(&api).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_to_picks_the_last_good_release() {
    let api = FakeApi::start(false).await;
    api.set_identity("amara", &["system:authenticated", "devops"]);
    // After an hour, stage verifies 2026.11.21; 2026.11.20 is its last good release.
    seed(&api, 1, &[]);
    let stage = api
        .get(
            "greenlight.dev/v1alpha1",
            "Pipeline",
            NAMESPACE,
            "mlops-platform",
        )
        .unwrap()["status"]["environments"][1]
        .clone();
    assert_eq!(stage["name"], "stage");
    assert_eq!(stage["phase"], "Verifying");
    assert_eq!(stage["current"]["release"], "mlops-2026-11-21");
    assert_eq!(stage["lastGood"]["release"], "mlops-2026-11-20");
    let plugin = Plugin::install(&api);

    let output = plugin
        .run(&[
            "rollback",
            "mlops-platform",
            "--env",
            "stage",
            "--comment",
            "latency",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let line = stdout(&output);
    let pattern = Regex::new(
        r"^approval (mlops-2026-11-20-stage-rollback-amara-[0-9a-f]{8}) created: amara asks to roll stage back to mlops-2026-11-20 \(2026\.11\.20\)\n$",
    )
    .unwrap();
    let name = pattern
        .captures(&line)
        .unwrap_or_else(|| panic!("{line:?}"))[1]
        .to_owned();
    let stored = api
        .get("greenlight.dev/v1alpha1", "Approval", NAMESPACE, &name)
        .expect("the Approval was created");
    // stage has no approval rules, so the Approval claims none of amara's groups.
    assert_eq!(
        stored["spec"],
        json!({"release": "mlops-2026-11-20", "environment": "stage", "decision": "Rollback",
               "approver": "amara", "comment": "latency"})
    );

    // Until stage changes, asking again is the same request.
    let again = plugin
        .run(&[
            "rollback",
            "mlops-platform",
            "--env",
            "stage",
            "--comment",
            "latency",
        ])
        .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).starts_with(&format!("approval {name} already exists: ")),
        "{}",
        stdout(&again)
    );
    assert_eq!(approvals(&api).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_a_named_release_and_nothing_to_roll_back_to() {
    let api = FakeApi::start(false).await;
    api.set_identity("amara", &["devops"]);
    // After three hours: dev ran one release, stage two (2026.11.21 now), prod its baseline.
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);

    let output = plugin
        .run(&["rollback", "mlops-platform", "--env", "dev"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: dev has nothing to roll back to: no release other than the one it runs, \
         mlops-add-analytics-dataset-3 (2026.11.21-dev.3), was verified there and still exists \
         (before it, dev ran only its baseline, which a rollback cannot name)\n"
    );
    let output = plugin
        .run(&["rollback", "mlops-platform", "--env", "prod"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: prod runs its baseline and no release was ever verified there: there is \
         nothing to roll back to\n"
    );
    let output = plugin
        .run(&[
            "rollback",
            "mlops-platform",
            "--env",
            "stage",
            "--to",
            "mlops-2026-11-21",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: stage already runs mlops-2026-11-21 (2026.11.21): there is nothing to roll \
         back\n"
    );
    let output = plugin
        .run(&[
            "rollback",
            "mlops-platform",
            "--env",
            "stage",
            "--to",
            "mlops-add-analytics-dataset-3",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(
            "error: mlops-add-analytics-dataset-3 (2026.11.21-dev.3) was never verified in \
             stage, so stage cannot be rolled back to it; releases verified there: \
             mlops-2026-11-21 (2026.11.21), mlops-2026-11-20 (2026.11.20)"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(approval_posts(&api), 0);

    let output = plugin
        .run(&[
            "rollback",
            "mlops-platform",
            "--env",
            "stage",
            "--to",
            "mlops-2026-11-20",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let created = approvals(&api);
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["spec"],
        json!({"release": "mlops-2026-11-20", "environment": "stage", "decision": "Rollback",
               "approver": "amara"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_clears_a_failure_and_refuses_a_release_that_did_not_fail() {
    let api = FakeApi::start(false).await;
    api.set_identity("amara", &["devops"]);
    seed(&api, 3, &["2026.11.21@stage"]);
    let stage = api
        .get(
            "greenlight.dev/v1alpha1",
            "Pipeline",
            NAMESPACE,
            "mlops-platform",
        )
        .unwrap()["status"]["environments"][1]
        .clone();
    assert_eq!(stage["failed"][0]["release"], "mlops-2026-11-21", "{stage}");
    let plugin = Plugin::install(&api);

    let output = plugin
        .run(&["retry", "mlops-2026-11-21", "--env", "stage"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let line = stdout(&output);
    assert!(
        Regex::new(
            r"^approval mlops-2026-11-21-stage-retry-amara-[0-9a-f]{8} created: amara asks to retry mlops-2026-11-21 \(2026\.11\.21\) in stage: its failure there is cleared and its failed gate tests run again\n$"
        )
        .unwrap()
        .is_match(&line),
        "{line:?}"
    );
    let created = approvals(&api);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["spec"]["decision"], "Retry");
    assert_eq!(created[0]["spec"]["release"], "mlops-2026-11-21");
    assert_eq!(created[0]["spec"]["environment"], "stage");

    let output = plugin
        .run(&["retry", "mlops-2026-11-20", "--env", "stage"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with("error: mlops-2026-11-20 (2026.11.20) has not failed in stage"),
        "{message}"
    );
    assert!(
        message.ends_with(": there is nothing to retry\n"),
        "{message}"
    );
    assert_eq!(approvals(&api).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_approval_prints_the_api_servers_message() {
    let api = FakeApi::start(false).await;
    api.set_identity("amara", &["devops"]);
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);
    let forbidden = "approvals.greenlight.dev is forbidden: User \"amara\" cannot create \
                     resource \"approvals\" in API group \"greenlight.dev\" in the namespace \
                     \"mlops\"";
    api.refuse(Method::POST, APPROVALS, 403, "Forbidden", forbidden, 1);

    let output = plugin
        .run(&["approve", "mlops-2026-11-21", "--env", "prod"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the API server refused approval mlops-2026-11-21-prod-approve-amara in \
             namespace mlops: {forbidden}\n"
        )
    );
    assert!(approvals(&api).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_environment_within_the_terminal_width() {
    let api = FakeApi::start(false).await;
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);

    let output = plugin
        .run_with(&["status", "mlops-platform"], Some(160))
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Pipeline mlops/mlops-platform");
    let table: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("NAME"))
        .take(4)
        .copied()
        .collect();
    assert_eq!(table[0], "NAME   VERSION           HEALTH   WAITING");
    assert_eq!(table[1], "dev    2026.11.21-dev.3  healthy  -");
    assert_eq!(table[2], "stage  2026.11.21        healthy  -");
    // prod runs its baseline; 2026.11.21 waits for its soak, two approvals and the 1 AM
    // window (which the wall clock may be inside of).
    let prod = Regex::new(
        r"^prod   baseline          healthy  2026\.11\.21: soak \(opens in \d+m\), approvals(, schedule \(opens in (\d+h)?(\d+m)?\))?$",
    )
    .unwrap();
    assert!(prod.is_match(table[3]), "{:?}", table[3]);
    assert!(
        text.contains(
            "\nprod: 2026.11.21 (mlops-2026-11-21) waits for:\n  soak: soaking: healthy in stage"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "\n  approvals: waiting for approval: devops-engineers needs 2 distinct approvers \
             (none yet)\n"
        ),
        "{text}"
    );

    let narrow = plugin
        .run_with(&["status", "mlops-platform"], Some(60))
        .await;
    assert!(narrow.status.success(), "{}", stderr(&narrow));
    let text = stdout(&narrow);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 60,
            "{} characters: {line:?}",
            line.chars().count()
        );
    }
    let prod = text.lines().find(|l| l.starts_with("prod ")).unwrap();
    assert!(
        prod.starts_with("prod   baseline          healthy  2026.11.21: soak"),
        "{prod:?}"
    );
    assert!(prod.ends_with('…'), "{prod:?}");
    assert_eq!(prod.chars().count(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_context_and_namespace_flags_choose_where_to_look() {
    let api = FakeApi::start(false).await;
    seed(&api, 3, &[]);
    let plugin = Plugin::install(&api);
    let kubeconfig = plugin.kubeconfig.to_str().unwrap().to_owned();

    // The context "elsewhere" defaults to the namespace "other".
    let output = plugin
        .run(&[
            "status",
            "mlops-platform",
            "--kubeconfig",
            &kubeconfig,
            "--context",
            "elsewhere",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no Pipeline \"mlops-platform\" in namespace other; there are no Pipelines there\n"
    );
    let output = plugin
        .run(&[
            "--context",
            "elsewhere",
            "-n",
            "mlops",
            "status",
            "mlops-platform",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("Pipeline mlops/mlops-platform\n"));

    let output = plugin
        .run(&["status", "mlops-platform", "--context", "nowhere"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: could not use the kubeconfig context \"nowhere\": "),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_an_error_not_a_panic() {
    let api = FakeApi::start(false).await;
    let plugin = Plugin::install(&api);
    std::fs::write(
        &plugin.kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: \"http://127.0.0.1:9\"}\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: gone\n  context: {cluster: gone, user: u}\n\
         current-context: gone\n",
    )
    .unwrap();
    let output = plugin.run(&["status", "shop"]).await;
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with(
            "error: could not read Pipeline default/shop (API server http://127.0.0.1:9/): "
        ),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}
