//! GitOps mode, the whole loop: the controller in-process against the fake API server and
//! a real Git server (`git daemon` on loopback). Argo CD and Flux cannot run here, so the
//! test plays their documented status contract on an `Application` and a `Kustomization`
//! (only the fields Greenlight reads): it moves `status.sync.revision` / health, or
//! `lastAppliedRevision` / `Ready`, the way they would after applying a commit.

#[path = "support/git_http.rs"]
mod git_http;
#[path = "support/git_server.rs"]
mod git_server;
mod support;

use std::time::Duration;

use git_http::GitHttp;
use git_server::GitServer;
use greenlight::controller::{
    rbac,
    repos::GitOptions,
    run::{Options, run},
};
use serde_json::{Value, json};
use support::{
    fake_api::FakeApi,
    shop::{assert_granted, condition_of, env_status, release},
};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(30);

fn kustomization(tag: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example.com/shop/api\n    newTag: {tag} # set by Greenlight\n"
    )
}

fn pipeline(url: &str) -> Value {
    let git = |env: &str, applier: (&str, Value)| {
        let mut git = json!({
            "repository": url, "branch": "main", "path": format!("shop/{env}"),
            "kustomize": {"images": [{"artifact": "api", "name": "registry.example.com/shop/api"}]}
        });
        git[applier.0] = applier.1;
        git
    };
    json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "dev", "accepts": ["main"],
             "target": {"namespace": "shop-dev",
                        "git": git("dev", ("argoCDApplication", json!({"name": "shop-dev", "namespace": "argocd"})))},
             "verify": {"progressDeadline": "20s"}},
            {"name": "prod", "upstream": ["dev"],
             "target": {"namespace": "shop-prod",
                        "git": git("prod", ("fluxKustomization", json!({"name": "shop-prod", "namespace": "flux-system"})))}}
        ]}
    })
}

/// Argo CD's Application, as it reports a sync of `revision` with this health.
fn application(revision: &str, health: &str, message: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "shop-dev", "namespace": "argocd"},
        "spec": {"source": {"path": "shop/dev"}},
        "status": {"sync": {"status": "Synced", "revision": revision},
                   "health": {"status": health, "message": message}}
    })
}

/// Flux's Kustomization, as it reports having applied `revision`.
fn flux(revision: &str) -> Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "shop-prod", "namespace": "flux-system"},
        "spec": {"path": "./shop/prod"},
        "status": {"lastAppliedRevision": format!("main@sha1:{revision}"),
                   "lastAttemptedRevision": format!("main@sha1:{revision}"),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                   "message": format!("Applied revision: main@sha1:{revision}")}]}
    })
}

/// Polls `found` (the Git server is not the API server: no watch to wait on).
async fn eventually<T>(why: &str, found: impl Fn() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = found() {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the controller against `api`, its Git cache in `cache`, reading repositories every
/// 200 ms; stopped by sending `true`.
fn start(
    api: &FakeApi,
    cache: &std::path::Path,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, shutdown) = watch::channel(false);
    let client = api.client();
    let options = Options {
        namespace: None,
        selector: None,
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: None,
        instance: "test-replica".into(),
        concurrency: greenlight::controller::run::DEFAULT_CONCURRENCY,
        git: GitOptions {
            cache: cache.to_path_buf(),
            poll: Duration::from_millis(200),
        },
        rediscover: Duration::from_millis(200),
    };
    let task = tokio::spawn(async move { run(client, options, shutdown).await.unwrap() });
    (stop, task)
}

/// A repository with dev's overlay, and an API server (serving Applications or not)
/// holding dev's Application, Healthy at the first commit, and a Pipeline of dev alone.
async fn dev_only(applications_served: bool) -> (GitServer, FakeApi) {
    let server = GitServer::start(&[("shop/dev/kustomization.yaml", &kustomization("0.9.0"))]);
    let initial = server.log()[0].split(' ').next().unwrap().to_owned();
    let api = FakeApi::start(true).await;
    if applications_served {
        api.serve("argoproj.io/v1alpha1", "applications", "Application");
    }
    api.put(application(&initial, "Healthy", ""));
    let mut only_dev = pipeline(&server.url());
    only_dev["spec"]["environments"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    api.put(only_dev);
    (server, api)
}

/// The newest commit on `main` whose subject starts with `subject`.
fn commit_starting(server: &GitServer, subject: &str) -> Option<String> {
    server.log().into_iter().find_map(|line| {
        let (id, rest) = line.split_once(' ')?;
        rest.split_once(": ")
            .is_some_and(|(_, s)| s.starts_with(subject))
            .then(|| id.to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotes_by_commits_verified_through_argo_cd_and_flux_rolls_back_by_commit_and_holds_for_a_person()
 {
    let mut server = GitServer::start(&[
        ("shop/dev/kustomization.yaml", &kustomization("0.9.0")),
        ("shop/prod/kustomization.yaml", &kustomization("0.9.0")),
    ]);
    let initial = server.log()[0].split(' ').next().unwrap().to_owned();
    let api = FakeApi::start(true).await;
    // The API server serves both kinds (their CRDs installed): the controller watches them.
    api.serve("argoproj.io/v1alpha1", "applications", "Application");
    api.serve(
        "kustomize.toolkit.fluxcd.io/v1",
        "kustomizations",
        "Kustomization",
    );
    api.put(application(&initial, "Healthy", ""));
    api.put(flux(&initial));
    api.put(pipeline(&server.url()));
    let cache = tempfile::tempdir().unwrap();
    let (stop, task) = start(&api, cache.path());

    // A release: one commit to dev's overlay, and nothing else changed.
    api.put(release("shop-1-0-0", "1.0.0"));
    let dev_commit = eventually("the deploy commit to dev", || {
        commit_starting(&server, "Deploy dev to 1.0.0")
    })
    .await;
    assert_eq!(
        server.show("shop/dev/kustomization.yaml"),
        kustomization("1.0.0")
    );
    assert_eq!(
        server.show("shop/prod/kustomization.yaml"),
        kustomization("0.9.0")
    );
    let message = server.message(&dev_commit);
    assert!(
        message.contains("Greenlight-Pipeline: shop/shop"),
        "{message}"
    );
    assert!(
        message.contains("Greenlight-Release: shop-1-0-0"),
        "{message}"
    );
    // Not deployed until Argo CD says so.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(
        env_status(&api, "dev")["healthy"],
        true,
        "healthy before Argo CD synced"
    );

    // Argo CD syncs the commit and reports Healthy: dev is verified, prod gets its commit.
    api.put(application(&dev_commit, "Healthy", ""));
    let prod_commit = eventually("the deploy commit to prod", || {
        commit_starting(&server, "Deploy prod to 1.0.0")
    })
    .await;
    assert_eq!(env_status(&api, "dev")["current"]["release"], "shop-1-0-0");
    // Flux applies it and is Ready: prod runs 1.0.0.
    api.put(flux(&prod_commit));
    api.wait_for(WAIT, || {
        let prod = env_status(&api, "prod");
        (prod["current"]["release"] == "shop-1-0-0" && prod["healthy"] == true).then_some(())
    })
    .await
    .expect("prod verified through Flux");
    assert_eq!(
        server.log().len(),
        3,
        "one commit per deploy: {:?}",
        server.log()
    );

    // 1.1.0 degrades dev: the rollback is a commit back to 1.0.0's images.
    api.put(release("shop-1-1-0", "1.1.0"));
    let bad = eventually("the deploy commit of 1.1.0", || {
        commit_starting(&server, "Deploy dev to 1.1.0")
    })
    .await;
    api.put(application(
        &bad,
        "Degraded",
        "Deployment api: progress deadline exceeded",
    ));
    let rollback = eventually("the rollback commit", || {
        commit_starting(&server, "Roll back dev to 1.0.0")
    })
    .await;
    assert_eq!(
        server.show("shop/dev/kustomization.yaml"),
        kustomization("1.0.0")
    );
    let message = server.message(&rollback);
    assert!(message.contains("Argo CD Application argocd/shop-dev: Degraded: Deployment api: progress deadline exceeded"), "{message}");
    assert!(
        message.contains("Greenlight-Purpose: rollback"),
        "{message}"
    );
    api.put(application(&rollback, "Healthy", ""));
    api.wait_for(WAIT, || {
        let dev = env_status(&api, "dev");
        (dev["current"]["release"] == "shop-1-0-0" && dev["healthy"] == true).then_some(())
    })
    .await
    .expect("dev restored");

    // A person pins prod in Git: held, not overwritten.
    let pin = server.commit_as_person(
        &[("shop/prod/kustomization.yaml", &kustomization("0.9.0"))],
        "pin prod to 0.9.0: incident 4711",
    );
    let hold = api
        .wait_for(WAIT, || {
            let hold = env_status(&api, "prod")["gitChange"].clone();
            (!hold.is_null()).then_some(hold)
        })
        .await
        .expect("prod is held for the person's commit");
    assert_eq!(hold["commit"], pin);
    assert_eq!(hold["author"], "Jane Doe <jane@example.com>");
    let changed = condition_of(&api, "ChangedInGit");
    assert_eq!(changed["status"], "True", "{changed}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        server.show("shop/prod/kustomization.yaml"),
        kustomization("0.9.0"),
        "never overwritten"
    );

    // The Git server goes away: a condition says so, and it clears once it is back.
    let condition = |api: &FakeApi| condition_of(api, "RepositoryUnreachable");
    server.stop();
    let down = api
        .wait_for(WAIT, || {
            let c = condition(&api);
            (c["status"] == "True").then_some(c)
        })
        .await
        .expect("RepositoryUnreachable");
    assert!(
        down["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot reach git://127.0.0.1"),
        "{down}"
    );
    server.run();
    api.wait_for(WAIT, || {
        (condition(&api)["status"] == "False").then_some(())
    })
    .await
    .expect("the repository is read again");

    // Both kinds are cached by a watch (its list, then its stream: a status change
    // reconciles at once), never read one by one.
    let requests = api.requests();
    for plural in ["applications", "kustomizations"] {
        assert!(
            requests
                .iter()
                .any(|r| r.method == http::Method::GET && r.path.ends_with(&format!("/{plural}"))),
            "{plural} are listed for their store"
        );
        assert!(
            !requests
                .iter()
                .any(|r| r.method == http::Method::GET && r.path.contains(&format!("/{plural}/"))),
            "{plural} are not read by name when the store holds them"
        );
    }

    // Every request the controller made is granted by the documented RBAC.
    assert_granted(&api.requests(), &rbac::required());
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

/// The Argo CD Application of an environment in another cluster (`target.cluster`) sits in
/// that cluster: it is read there, by name, through the connection the kubeconfig Secret
/// gives, with only what the `greenlight-remote` chart grants; the test plays Argo CD there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_in_another_cluster_is_read_there_and_says_when_the_commit_is_deployed() {
    let server = GitServer::start(&[("shop/prod/kustomization.yaml", &kustomization("0.9.0"))]);
    let initial = server.log()[0].split(' ').next().unwrap().to_owned();
    let local = FakeApi::start(true).await;
    let remote = FakeApi::start(true).await;
    remote.serve("argoproj.io/v1alpha1", "applications", "Application");
    let in_remote = |revision: &str, health: &str, message: &str| {
        let mut app = application(revision, health, message);
        app["metadata"]["name"] = json!("shop-prod");
        app
    };
    remote.put(in_remote(&initial, "Healthy", ""));
    local.put(remote.kubeconfig_secret("shop", "prod-cluster"));
    local.put(json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "prod", "accepts": ["main"],
             "target": {"namespace": "shop-prod",
                        "cluster": {"secretRef": {"name": "prod-cluster"}},
                        "git": {"repository": server.url(), "branch": "main", "path": "shop/prod",
                                "kustomize": {"images": [{"artifact": "api", "name": "registry.example.com/shop/api"}]},
                                "argoCDApplication": {"name": "shop-prod", "namespace": "argocd"}}},
             "verify": {"progressDeadline": "20s"}}
        ]}
    }));
    let cache = tempfile::tempdir().unwrap();
    let (stop, task) = start(&local, cache.path());

    local.put(release("shop-1-0-0", "1.0.0"));
    let commit = eventually("the deploy commit to prod", || {
        commit_starting(&server, "Deploy prod to 1.0.0")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(
        env_status(&local, "prod")["healthy"],
        true,
        "healthy before Argo CD synced, there"
    );

    // Argo CD in prod's cluster syncs the commit: prod is verified.
    remote.put(in_remote(&commit, "Healthy", ""));
    local
        .wait_for(WAIT, || {
            let prod = env_status(&local, "prod");
            (prod["current"]["release"] == "shop-1-0-0" && prod["healthy"] == true).then_some(())
        })
        .await
        .expect("prod verified through the Application in its cluster");

    let by_name = |api: &FakeApi| {
        api.requests().iter().any(|r| {
            r.method == http::Method::GET
                && r.path == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/shop-prod"
        })
    };
    assert!(by_name(&remote), "read by name in prod's cluster");
    assert!(
        !local
            .requests()
            .iter()
            .any(|r| r.path.contains("/applications")),
        "the controller's own cluster is not asked for it"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_granted(&local.requests(), &rbac::required());
    // In prod's cluster: the target namespace's table, and `get` on Applications in the
    // namespaces the chart's `syncNamespaces` names.
    let (in_argocd, elsewhere): (Vec<_>, Vec<_>) = remote
        .requests()
        .into_iter()
        .partition(|r| r.path.contains("/namespaces/argocd/"));
    assert_granted(&in_argocd, &rbac::remote_sync());
    assert_granted(&elsewhere, &rbac::remote());
}

/// The repository away when a release arrives, then the controller killed right after its
/// commit reached the server: nothing is lost while the server is away (the environment
/// waits and says why), and a new controller with an empty cache finds that commit by its
/// trailers instead of making it again (invariant I6 with Git as the target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_away_then_a_controller_killed_after_its_push_loses_nothing_and_commits_once()
{
    let (mut server, api) = dev_only(true).await;
    let first_cache = tempfile::tempdir().unwrap();
    let (_stop, first) = start(&api, first_cache.path());
    api.wait_for(WAIT, || {
        (condition_of(&api, "RepositoryUnreachable")["status"] == "False").then_some(())
    })
    .await
    .expect("the repository is read");

    // Away: the release waits, and nothing is committed.
    server.stop();
    api.wait_for(WAIT, || {
        (condition_of(&api, "RepositoryUnreachable")["status"] == "True").then_some(())
    })
    .await
    .expect("RepositoryUnreachable");
    api.put(release("shop-1-0-0", "1.0.0"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.log().len(), 1, "nothing committed while away");
    assert_ne!(env_status(&api, "dev")["current"]["release"], "shop-1-0-0");

    // Back: the commit is made, and the controller dies at once (kill -9: no graceful
    // stop, and its cache goes with its pod).
    server.run();
    let commit = eventually("the deploy commit once the server is back", || {
        commit_starting(&server, "Deploy dev to 1.0.0")
    })
    .await;
    first.abort();
    let _ = first.await;
    drop(first_cache);

    let second_cache = tempfile::tempdir().unwrap();
    let (stop, second) = start(&api, second_cache.path());
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.put(application(&commit, "Healthy", ""));
    api.wait_for(WAIT, || {
        let dev = env_status(&api, "dev");
        (dev["current"]["release"] == "shop-1-0-0" && dev["healthy"] == true).then_some(())
    })
    .await
    .expect("dev verified by the new controller");
    let log = server.log();
    assert_eq!(log.len(), 2, "one deploy commit across the kill: {log:?}");
    assert!(log[0].starts_with(&commit), "{log:?}");
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
}

/// Argo CD installed after Greenlight started: its Application is read by name while the
/// API server does not serve the kind, and watched once it does (discovery is asked again
/// every `rediscover`), with no restart; a sync is then seen through the watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_served_only_after_the_start_are_watched_from_then_on() {
    let (server, api) = dev_only(false).await;
    let cache = tempfile::tempdir().unwrap();
    let (stop, task) = start(&api, cache.path());
    let application_requests = |api: &FakeApi| -> (bool, bool) {
        let requests = api.requests();
        let path = "/apis/argoproj.io/v1alpha1/applications";
        (
            requests.iter().any(|r| {
                r.method == http::Method::GET && r.path.ends_with("/applications/shop-dev")
            }),
            requests
                .iter()
                .any(|r| r.method == http::Method::GET && r.path == path),
        )
    };
    api.wait_for(WAIT, || application_requests(&api).0.then_some(()))
        .await
        .expect("read by name while the kind is not served");
    assert!(!application_requests(&api).1, "not listed: not served");

    // Argo CD's CRD is installed: the kind is listed and watched from then on.
    api.serve("argoproj.io/v1alpha1", "applications", "Application");
    api.wait_for(WAIT, || application_requests(&api).1.then_some(()))
        .await
        .expect("listed and watched once served");
    api.clear_requests();
    api.put(release("shop-1-0-0", "1.0.0"));
    let commit = eventually("the deploy commit to dev", || {
        commit_starting(&server, "Deploy dev to 1.0.0")
    })
    .await;
    api.put(application(&commit, "Healthy", ""));
    api.wait_for(WAIT, || {
        let dev = env_status(&api, "dev");
        (dev["current"]["release"] == "shop-1-0-0" && dev["healthy"] == true).then_some(())
    })
    .await
    .expect("dev verified through the watched Application");
    assert!(
        !application_requests(&api).0,
        "no longer read by name once the store holds it"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

/// Two environments on one branch, over HTTP with a token from their Secret: they take
/// turns on its cache, and a fetch one made just now is read by the other, not made again
/// (a Git host counts every fetch against its rate limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_on_one_branch_share_its_fetches() {
    let server = GitServer::start(&[
        ("shop/dev/kustomization.yaml", &kustomization("0.9.0")),
        ("shop/prod/kustomization.yaml", &kustomization("0.9.0")),
    ]);
    let http = GitHttp::start(server.dir.path(), "greenlight-bot", "s3cret-token");
    let api = FakeApi::start(true).await;
    api.put(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "envs-token", "namespace": "shop"},
        "data": {"username": "Z3JlZW5saWdodC1ib3Q=", "password": "czNjcmV0LXRva2Vu"}
    }));
    let mut both = pipeline(&http.url());
    for env in both["spec"]["environments"].as_array_mut().unwrap() {
        env["target"]["git"]["secretRef"] = json!({"name": "envs-token"});
    }
    api.put(both);
    let cache = tempfile::tempdir().unwrap();
    let fetches = || {
        http.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(method, path, status)| {
                method == "GET" && path.ends_with("/info/refs") && *status == 200
            })
            .count()
    };
    let (stop, task) = start(&api, cache.path());
    api.wait_for(WAIT, || {
        (condition_of(&api, "RepositoryUnreachable")["status"] == "False").then_some(())
    })
    .await
    .expect("both environments read, with the Secret's token");

    let (before, since) = (fetches(), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (made, elapsed) = (fetches() - before, since.elapsed());
    // Each environment reads every 200 ms: apart, they would fetch about twice per poll.
    let polls = elapsed.as_secs_f64() / 0.2;
    assert!(
        made >= 1 && (made as f64) < 1.4 * polls,
        "{made} fetches in {elapsed:?} ({polls:.1} polls of 200 ms)"
    );
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}
