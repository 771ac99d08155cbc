//! GitOps mode against a real Git server: Debian's `git daemon` on loopback, serving a
//! bare repository that the tests also change with the `git` command, as a person or a
//! second writer would. The controller's side is `greenlight::gitops::repo` (libgit2).

#[path = "support/git_http.rs"]
mod git_http;
#[path = "support/git_server.rs"]
mod git_server;

use std::collections::BTreeMap;

use git_http::GitHttp;
use git_server::GitServer;
use greenlight::{
    api::{HelmImage, KustomizeImage, WorkloadKind},
    engine::{ChangeNote, CommitPurpose, CommitRequest},
    gitops::{
        layout::{Layout, ManifestContainer},
        message::commit_message,
        repo::{Branch, Credentials, GitError},
    },
};

const PIPELINE: &str = "shop/shop";
const WEB: &str = "registry.example.com/shop/web";

const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base   # the shared manifests
images:
  - name: registry.example.com/shop/web
    newTag: 1.4.1 # set by Greenlight
";

fn kustomize(dir: &str) -> Layout {
    Layout::Kustomize {
        dir: dir.into(),
        images: vec![KustomizeImage {
            artifact: "web".into(),
            name: WEB.into(),
        }],
    }
}

fn images(tag: &str) -> BTreeMap<String, String> {
    [("web".to_owned(), format!("{WEB}:{tag}"))].into()
}

fn request(environment: &str, tag: &str) -> CommitRequest {
    CommitRequest {
        environment: environment.into(),
        images: images(tag),
        note: ChangeNote {
            purpose: CommitPurpose::Deploy,
            release: Some(format!("shop-{}", tag.replace('.', "-"))),
            version: tag.into(),
            details: vec!["gates passed: soak".into(), "approved by alice".into()],
        },
    }
}

fn branch(server: &GitServer, cache: &tempfile::TempDir) -> Branch {
    Branch::open(cache.path(), &server.url(), "main", Credentials::default()).unwrap()
}

/// Commits `tag` as the images of `environment` on `branch`, as a deploy would.
fn commit_on(
    branch: &Branch,
    layout: &Layout,
    environment: &str,
    tag: &str,
) -> Result<greenlight::gitops::repo::Head, GitError> {
    let request = request(environment, tag);
    branch.commit_images(
        layout,
        PIPELINE,
        environment,
        &request.images,
        &commit_message(PIPELINE, &request),
        ("Greenlight", "greenlight@greenlight.dev"),
    )
}

fn commit(
    server: &GitServer,
    cache: &tempfile::TempDir,
    layout: &Layout,
    environment: &str,
    tag: &str,
) -> greenlight::gitops::repo::Head {
    commit_on(&branch(server, cache), layout, environment, tag).unwrap()
}

#[test]
fn a_deploy_is_one_commit_that_changes_only_the_image_and_says_why() {
    let server = GitServer::start(&[
        ("shop/prod/kustomization.yaml", KUSTOMIZATION),
        ("shop/staging/kustomization.yaml", KUSTOMIZATION),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let layout = kustomize("shop/prod");
    let before = branch(&server, &cache)
        .fetch(&layout, PIPELINE, "prod")
        .unwrap();
    assert_eq!(before.images["web"].to_string(), format!("{WEB}:1.4.1"));
    assert_eq!(before.changed_by, None, "the layout as found is the start");

    let head = commit(&server, &cache, &layout, "prod", "1.4.2");
    assert_eq!(head.images["web"].to_string(), format!("{WEB}:1.4.2"));
    assert_eq!(
        server.show("shop/prod/kustomization.yaml"),
        KUSTOMIZATION.replace("newTag: 1.4.1", "newTag: 1.4.2"),
        "comments and layout kept; only the tag changed"
    );
    assert_eq!(
        server.show("shop/staging/kustomization.yaml"),
        KUSTOMIZATION
    );
    let log = server.log();
    assert_eq!(log.len(), 2);
    assert!(
        log[0].ends_with("Greenlight: Deploy prod to 1.4.2 (shop-1-4-2)"),
        "{log:?}"
    );
    let message = server.message(&head.commit);
    for line in [
        "web: registry.example.com/shop/web:1.4.2",
        "approved by alice",
        "Greenlight-Pipeline: shop/shop",
        "Greenlight-Environment: prod",
        "Greenlight-Release: shop-1-4-2",
        "Greenlight-Purpose: deploy",
    ] {
        assert!(message.contains(line), "{line:?} missing from:\n{message}");
    }
    assert_eq!(head.declaring, vec![head.commit.clone()]);
}

#[test]
fn a_commit_asked_again_after_a_crash_is_found_not_made_twice() {
    let server = GitServer::start(&[("prod/kustomization.yaml", KUSTOMIZATION)]);
    let layout = kustomize("prod");
    let first = commit(
        &server,
        &tempfile::tempdir().unwrap(),
        &layout,
        "prod",
        "1.4.2",
    );
    // The controller crashed after the push, before its status write: a new process (an
    // empty cache) decides the same commit again.
    let again = commit(
        &server,
        &tempfile::tempdir().unwrap(),
        &layout,
        "prod",
        "1.4.2",
    );
    assert_eq!(again.commit, first.commit);
    assert_eq!(server.log().len(), 2, "one commit, not two");
}

#[test]
fn a_branch_moved_by_a_second_writer_is_fetched_and_the_images_reapplied() {
    let server = GitServer::start(&[
        ("prod/kustomization.yaml", KUSTOMIZATION),
        ("staging/kustomization.yaml", KUSTOMIZATION),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let layout = kustomize("prod");
    let ours = branch(&server, &cache);
    let head = ours.fetch(&layout, PIPELINE, "prod").unwrap();
    // Someone else pushes after our fetch and before our push.
    let theirs = server.commit_as_person(
        &[(
            "staging/kustomization.yaml",
            &KUSTOMIZATION.replace("1.4.1", "1.5.0"),
        )],
        "staging: try 1.5.0",
    );
    let changed = layout.write(&head.files, &images("1.4.2")).unwrap();
    let refused = ours.commit(
        &head.commit,
        &changed,
        "Deploy prod to 1.4.2",
        ("Greenlight", "g@example.com"),
    );
    assert!(
        matches!(&refused, Err(GitError::Moved { now, .. }) if *now == theirs),
        "a push over a moved branch is refused, not forced: {refused:?}"
    );
    assert_eq!(server.log().len(), 2, "nothing of ours landed");

    let head = commit(&server, &cache, &layout, "prod", "1.4.2");
    let log = server.log();
    assert_eq!(log.len(), 3);
    assert!(
        log[1].starts_with(&theirs),
        "our commit sits on theirs: {log:?}"
    );
    assert_eq!(
        server.show("staging/kustomization.yaml"),
        KUSTOMIZATION.replace("1.4.1", "1.5.0")
    );
    assert_eq!(head.images["web"].to_string(), format!("{WEB}:1.4.2"));
}

#[test]
fn a_persons_commit_after_greenlights_is_reported_until_the_images_are_back() {
    let server = GitServer::start(&[("prod/kustomization.yaml", KUSTOMIZATION)]);
    let cache = tempfile::tempdir().unwrap();
    let layout = kustomize("prod");
    commit(&server, &cache, &layout, "prod", "1.4.2");
    let pin = server.commit_as_person(
        &[("prod/kustomization.yaml", KUSTOMIZATION)],
        "pin web to 1.4.1: incident 4711",
    );
    let head = branch(&server, &cache)
        .fetch(&layout, PIPELINE, "prod")
        .unwrap();
    let change = head.changed_by.expect("a person's change is reported");
    assert_eq!(change.id, pin);
    assert_eq!(change.author, "Jane Doe <jane@example.com>");
    assert_eq!(change.summary, "pin web to 1.4.1: incident 4711");

    // Another environment's commit on top changes nothing of that.
    server.commit_as_person(&[("README.md", "environments\n")], "docs");
    let head = branch(&server, &cache)
        .fetch(&layout, PIPELINE, "prod")
        .unwrap();
    assert_eq!(head.changed_by.map(|c| c.id), Some(pin.clone()));
    assert_eq!(
        head.declaring.len(),
        2,
        "the docs commit and the pin declare these images"
    );

    // Reverted by a person: the branch declares what Greenlight wrote again.
    server.commit_as_person(
        &[(
            "prod/kustomization.yaml",
            &KUSTOMIZATION.replace("1.4.1", "1.4.2"),
        )],
        "revert the pin",
    );
    let head = branch(&server, &cache)
        .fetch(&layout, PIPELINE, "prod")
        .unwrap();
    assert_eq!(head.changed_by, None);
}

#[test]
fn a_server_that_goes_away_is_an_error_to_retry_and_nothing_is_lost() {
    let mut server = GitServer::start(&[("prod/kustomization.yaml", KUSTOMIZATION)]);
    let cache = tempfile::tempdir().unwrap();
    let layout = kustomize("prod");
    server.stop();
    let error = commit_on(&branch(&server, &cache), &layout, "prod", "1.4.2").unwrap_err();
    assert!(matches!(error, GitError::Unreachable { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot reach {}", server.url())),
        "{error}"
    );
    server.run();
    let head = commit(&server, &cache, &layout, "prod", "1.4.2");
    assert_eq!(head.images["web"].to_string(), format!("{WEB}:1.4.2"));
    assert_eq!(server.log().len(), 2);
}

#[test]
fn helm_values_and_plain_manifests_change_in_place_too() {
    let values = "replicaCount: 3\n# the storefront\nimage:\n  repository: registry.example.com/shop/web\n  tag: \"1.4.1\"\n";
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/shop/web:1.4.1 # app\n";
    let server = GitServer::start(&[
        ("helm/values-prod.yaml", values),
        ("yaml/prod/web.yaml", manifest),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let helm = Layout::Helm {
        file: "helm/values-prod.yaml".into(),
        images: vec![HelmImage {
            artifact: "web".into(),
            reference: None,
            repository: Some("image.repository".into()),
            tag: Some("image.tag".into()),
            digest: None,
        }],
    };
    commit(&server, &cache, &helm, "helm-prod", "1.4.2");
    assert_eq!(
        server.show("helm/values-prod.yaml"),
        values.replace("\"1.4.1\"", "\"1.4.2\"")
    );
    let yaml = Layout::Yaml {
        dir: "yaml/prod".into(),
        workloads: vec![ManifestContainer {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
            container: None,
            artifact: "web".into(),
        }],
    };
    commit(&server, &cache, &yaml, "yaml-prod", "1.4.2");
    assert_eq!(
        server.show("yaml/prod/web.yaml"),
        manifest.replace("web:1.4.1", "web:1.4.2")
    );
    assert_eq!(server.log().len(), 3);
}

#[test]
fn a_missing_branch_or_file_says_so() {
    let server = GitServer::start(&[("prod/kustomization.yaml", KUSTOMIZATION)]);
    let cache = tempfile::tempdir().unwrap();
    let missing = Branch::open(
        cache.path(),
        &server.url(),
        "release",
        Credentials::default(),
    )
    .unwrap();
    let error = missing
        .fetch(&kustomize("prod"), PIPELINE, "prod")
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let error = branch(&server, &cache)
        .fetch(&kustomize("qa"), PIPELINE, "qa")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "qa/kustomization.yaml does not exist in the repository"
    );
    assert!(!error.is_transient(), "a person must fix the layout");
}

/// Over HTTP with basic authentication (Git's own `git http-backend`, as a Git host takes
/// a token over https; TLS itself is libgit2's and OpenSSL's), the Secret's `username` and
/// `password` fetch and push; a wrong token or none is an error that says so, asked once,
/// not replayed until the server gives up.
#[test]
fn a_token_from_the_secret_fetches_and_pushes_over_http_and_a_wrong_one_is_refused() {
    let server = GitServer::start(&[("prod/kustomization.yaml", KUSTOMIZATION)]);
    let http = GitHttp::start(server.dir.path(), "greenlight-bot", "s3cret-token");
    let layout = kustomize("prod");
    let with = |username: Option<&str>, password: Option<&str>| Credentials {
        username: username.map(str::to_owned),
        password: password.map(str::to_owned),
        ..Credentials::default()
    };

    let cache = tempfile::tempdir().unwrap();
    let good = Branch::open(
        cache.path(),
        &http.url(),
        "main",
        with(Some("greenlight-bot"), Some("s3cret-token")),
    )
    .unwrap();
    let before = good.fetch(&layout, PIPELINE, "prod").unwrap();
    assert_eq!(before.images["web"].to_string(), format!("{WEB}:1.4.1"));
    let head = commit_on(&good, &layout, "prod", "1.4.2").unwrap();
    assert_eq!(
        server.log()[0],
        format!(
            "{} Greenlight: Deploy prod to 1.4.2 (shop-1-4-2)",
            head.commit
        ),
        "pushed over HTTP"
    );
    assert!(
        http.requests
            .lock()
            .unwrap()
            .iter()
            .any(|(method, path, status)| method == "POST"
                && path.ends_with("/git-receive-pack")
                && *status == 200),
        "the push went through git http-backend: {:?}",
        http.requests.lock().unwrap()
    );

    for (credentials, says) in [
        (
            with(Some("greenlight-bot"), Some("wrong")),
            "the server refused the username and password in the Secret",
        ),
        (
            with(None, None),
            "the server asks for credentials the Secret does not hold",
        ),
    ] {
        let refused_before = http.statuses().iter().filter(|s| **s == 401).count();
        let error = Branch::open(
            tempfile::tempdir().unwrap().path(),
            &http.url(),
            "main",
            credentials,
        )
        .unwrap()
        .fetch(&layout, PIPELINE, "prod")
        .unwrap_err();
        assert!(
            matches!(error, GitError::Credentials(_)) && error.is_transient(),
            "{error:?}"
        );
        assert_eq!(error.to_string(), format!("{}: {says}", http.url()));
        let refused = http.statuses().iter().filter(|s| **s == 401).count() - refused_before;
        assert!(
            refused <= 2,
            "asked once with the Secret's credentials, not replayed: {refused} refusals"
        );
    }
}
