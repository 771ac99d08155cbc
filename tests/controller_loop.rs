//! The whole controller, in-process, against a fake API server on loopback: watches,
//! stores, reconciles, writes, Events and leader election, with the exact requests
//! asserted. (The real API server runs in `tests/e2e.rs`, when a cluster is given.)

#[path = "support/http_get.rs"]
mod http_get;
mod support;

use std::time::Duration;

use greenlight::controller::{
    leader::{Elector, Leadership, LeaseConfig},
    rbac,
    run::{Options, run, run_serving},
};
use serde_json::{Value, json};
use support::{
    fake_api::{FakeApi, Recorded},
    shop::{assert_granted, condition_of, env_status, release},
};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

fn deployment(namespace: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": namespace, "labels": {"app": "api"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                    {"name": "api", "image": image, "ports": [{"containerPort": 8080}]},
                    {"name": "proxy", "image": "envoy:1.30"}]}}}
    })
}

/// dev (accepts main, a test Job) -> prod (one approval).
fn pipeline(dev_tests: bool) -> Value {
    let tests = if dev_tests {
        json!([{"name": "smoke", "timeout": "5m", "template": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "t", "image": "tests:1"}]}}}}])
    } else {
        json!([])
    };
    json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "dev", "accepts": ["main"],
             "target": {"namespace": "shop-dev", "deployments": [{"name": "api", "container": "api"}]},
             "verify": {"tests": tests}},
            {"name": "prod", "upstream": ["dev"],
             "target": {"namespace": "shop-prod", "deployments": [{"name": "api", "container": "api"}]},
             "gates": {"approvals": [{"name": "owners", "count": 1}]}}
        ]}
    })
}

fn approval(name: &str, release: &str) -> Value {
    json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Approval",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"release": release, "environment": "prod", "decision": "Approve", "approver": "alice"}
    })
}

fn options(leader_election: Option<LeaseConfig>) -> Options {
    Options {
        namespace: None,
        selector: None,
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election,
        instance: "test-replica".into(),
        concurrency: greenlight::controller::run::DEFAULT_CONCURRENCY,
        git: Default::default(),
        // Soon enough for a test that installs a CRD's kind after the start.
        rediscover: Duration::from_millis(200),
    }
}

/// The controller's logs in the test's output (shown for a failing test), at
/// `greenlight=debug` unless `RUST_LOG` says otherwise.
fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,greenlight=debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Starts the controller; dropping the returned sender stops nothing, sending `true` does.
fn start(api: &FakeApi, options: Options) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    capture_logs();
    let (stop, shutdown) = watch::channel(false);
    let client = api.client();
    let task = tokio::spawn(async move {
        run(client, options, shutdown)
            .await
            .expect("the controller runs");
    });
    (stop, task)
}

/// SIGTERM, in-process: the controller must stop within the deadline.
async fn shut_down(stop: watch::Sender<bool>, task: tokio::task::JoinHandle<()>) {
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("a graceful stop")
        .expect("the controller task ends without panicking");
}

fn is_image_patch(r: &Recorded, namespace: &str, image: &str) -> bool {
    r.method == http::Method::PATCH
        && r.path == format!("/apis/apps/v1/namespaces/{namespace}/deployments/api")
        && r.body.to_string().contains(image)
}

fn seed(api: &FakeApi, dev_tests: bool) {
    api.put(deployment(
        "shop-dev",
        "registry.example.com/shop/api:0.9.0",
    ));
    api.put(deployment(
        "shop-prod",
        "registry.example.com/shop/api:0.9.0",
    ));
    api.put(pipeline(dev_tests));
}

/// Waits until `env` runs `release` and is healthy.
async fn wait_healthy(api: &FakeApi, env: &str, release: &str, why: &str) {
    api.wait_for(WAIT, || {
        let status = env_status(api, env);
        (status["current"]["release"] == release && status["healthy"] == true).then_some(())
    })
    .await
    .expect(why);
}

/// Every request the controller made is one the documented RBAC grants
/// (`greenlight::controller::rbac::required()`, which the chart's Roles are checked against).
fn assert_rbac_covers_every_request(api: &FakeApi) {
    assert_rbac_covers(api.requests());
}

/// [`assert_rbac_covers_every_request`], over `requests` (those the controller made).
fn assert_rbac_covers(requests: Vec<Recorded>) {
    assert!(!requests.is_empty(), "the controller made requests");
    assert_granted(&requests, &rbac::required());
}

/// Issue: a real API server's Deployment controller fell minutes behind, and rollouts
/// were failed and rolled back after `progressDeadline` although their new pods had never
/// been tried. Here the Deployment controller holds `observedGeneration` back past dev's
/// deadline: nothing is rolled back, the wait is in status, and the rollout completes
/// once the controller catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_deployment_controller_never_fails_a_release() {
    let api = FakeApi::start(true).await;
    api.put(deployment(
        "shop-dev",
        "registry.example.com/shop/api:0.9.0",
    ));
    api.put(deployment(
        "shop-prod",
        "registry.example.com/shop/api:0.9.0",
    ));
    let mut shop = pipeline(false);
    shop["spec"]["environments"][0]["verify"]["progressDeadline"] = json!("2s");
    api.put(shop);
    api.set_auto_kubelet(false);
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    api.wait_for_request(WAIT, |r| is_image_patch(r, "shop-dev", "api:1.0.0"))
        .await
        .expect("the release is deployed into dev");

    // Well past the 2s deadline, the Deployment controller still has not observed it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dev = env_status(&api, "dev");
    let message = dev["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("waiting for the Deployment controller to observe generation 2 of shop-dev/api (observed: 1)"),
        "{dev}"
    );
    let conditions = api
        .get("greenlight.dev/v1alpha1", "Pipeline", "shop", "shop")
        .unwrap()["status"]["conditions"]
        .clone();
    let lagging = conditions
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "WorkloadControllerLagging")
        .cloned()
        .unwrap();
    assert_eq!(lagging["status"], "True", "{lagging}");
    assert!(
        !api.requests()
            .iter()
            .any(|r| is_image_patch(r, "shop-dev", "api:0.9.0")),
        "rolled back a rollout the Deployment controller never tried"
    );
    let release = api
        .get("greenlight.dev/v1alpha1", "Release", "shop", "shop-1-0-0")
        .unwrap();
    let dev_state = release["status"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dev")
        .unwrap()["state"]
        .clone();
    assert_eq!(dev_state, "Deploying", "{release}");

    // It catches up: the rollout completes and the release is healthy in dev.
    api.set_auto_kubelet(true);
    api.catch_up("shop-dev", "api");
    wait_healthy(
        &api,
        "dev",
        "shop-1-0-0",
        "the rollout completes once observed",
    )
    .await;
    shut_down(stop, task).await;
}

/// `object` with every "shop" renamed to `name` (namespaces, names, images, targets).
fn renamed(object: &Value, name: &str) -> Value {
    serde_json::from_str(&object.to_string().replace("shop", name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_act_only_on_their_own_pipelines() {
    let api = FakeApi::start(true).await;
    for app in ["shop", "cafe"] {
        for env in ["dev", "prod"] {
            api.put(deployment(
                &format!("{app}-{env}"),
                &format!("registry.example.com/{app}/api:0.9.0"),
            ));
        }
    }
    let mut shop = pipeline(false);
    shop["metadata"]["labels"] = json!({"greenlight.dev/shard": "a"});
    let mut cafe = renamed(&pipeline(false), "cafe");
    cafe["metadata"]["labels"] = json!({"greenlight.dev/shard": "b"});
    api.put(shop);
    api.put(cafe);
    let shard = |name: &str| Options {
        selector: Some(format!("greenlight.dev/shard={name}").parse().unwrap()),
        instance: format!("shard-{name}"),
        ..options(None)
    };

    let (stop_a, task_a) = start(&api, shard("a"));
    api.put(release("shop-1-0-0", "1.0.0"));
    api.put(renamed(&release("shop-1-0-0", "1.0.0"), "cafe"));
    api.wait_for_request(WAIT, |r| is_image_patch(r, "shop-dev", "shop/api:1.0.0"))
        .await
        .expect("shard a deploys its own Pipeline");
    // Give shard a every chance to (wrongly) act on cafe, which it does not select.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes_to_cafe = |requests: &[Recorded]| {
        requests
            .iter()
            .filter(|r| r.method != http::Method::GET && r.path.contains("/namespaces/cafe"))
            .count()
    };
    assert_eq!(
        writes_to_cafe(&api.requests()),
        0,
        "shard a wrote to cafe, which belongs to shard b"
    );
    assert!(
        api.requests().iter().any(|r| r.path.ends_with("/pipelines")
            && r.query.contains("labelSelector=greenlight.dev%2Fshard%3Da")),
        "shard a lists and watches only its Pipelines"
    );

    let (stop_b, task_b) = start(&api, shard("b"));
    api.wait_for_request(WAIT, |r| is_image_patch(r, "cafe-dev", "cafe/api:1.0.0"))
        .await
        .expect("shard b deploys its own Pipeline");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Each Pipeline's Events come from its own shard only: the instance that reports
    // them is the one that decided.
    let reporters = |namespace: &str| -> std::collections::BTreeSet<String> {
        api.requests()
            .iter()
            .filter(|r| {
                r.method == http::Method::POST
                    && r.path == format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events")
            })
            .map(|r| {
                r.body["reportingInstance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(reporters("shop"), ["shard-a".to_owned()].into());
    assert_eq!(reporters("cafe"), ["shard-b".to_owned()].into());
    shut_down(stop_a, task_a).await;
    shut_down(stop_b, task_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_in_the_watch_stream_leads_to_the_image_patch() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));

    let dev = api
        .wait_for_request(WAIT, |r| is_image_patch(r, "shop-dev", "api:1.0.0"))
        .await
        .expect("the release is deployed into dev");
    // Server-side apply with Greenlight's field manager, touching only the container image.
    assert_eq!(dev.content_type, "application/apply-patch+yaml");
    assert!(dev.query.contains("fieldManager=greenlight") && dev.query.contains("force=true"));
    assert_eq!(
        dev.body,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "api", "namespace": "shop-dev"},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "api", "image": "registry.example.com/shop/api:1.0.0"}]}}}})
    );
    // The status was applied to the status subresource before the image changed.
    let requests = api.requests();
    let status_write = requests
        .iter()
        .position(|r| {
            r.method == http::Method::PATCH
                && r.path == "/apis/greenlight.dev/v1alpha1/namespaces/shop/pipelines/shop/status"
        })
        .expect("the Pipeline status is written");
    let patch = requests
        .iter()
        .position(|r| is_image_patch(r, "shop-dev", "api:1.0.0"))
        .unwrap();
    assert!(
        status_write < patch,
        "the status is written before any action"
    );
    assert_eq!(
        requests[status_write].content_type,
        "application/apply-patch+yaml"
    );
    assert!(
        requests[status_write]
            .query
            .contains("fieldManager=greenlight")
    );

    // prod waits for the approval, and says so.
    let waiting = api
        .wait_for(WAIT, || {
            let r = api.get("greenlight.dev/v1alpha1", "Release", "shop", "shop-1-0-0")?;
            let prod = r["status"]["environments"]
                .as_array()?
                .iter()
                .find(|e| e["name"] == "prod")?
                .clone();
            (prod["state"] == "Waiting").then_some(prod)
        })
        .await
        .expect("the release waits for prod's approval");
    assert_eq!(waiting["blockedBy"][0]["gate"], "approvals");
    assert!(
        !api.requests()
            .iter()
            .any(|r| is_image_patch(r, "shop-prod", "api:1.0.0")),
        "nothing reaches prod before the approval"
    );

    api.put(approval("alice-approves", "shop-1-0-0"));
    api.wait_for_request(WAIT, |r| is_image_patch(r, "shop-prod", "api:1.0.0"))
        .await
        .expect("the approval promotes the release into prod");
    wait_healthy(
        &api,
        "prod",
        "shop-1-0-0",
        "prod runs the release and is healthy",
    )
    .await;

    // Events went out through the events.k8s.io API, about the Pipeline and the Release.
    let events: Vec<Value> = api
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == http::Method::POST
                && r.path == "/apis/events.k8s.io/v1/namespaces/shop/events"
        })
        .map(|r| r.body)
        .collect();
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"PromotionStarted"), "{reasons:?}");
    assert!(
        events
            .iter()
            .all(|e| e["reportingController"] == "greenlight")
    );
    assert!(events.iter().any(|e| e["regarding"]["kind"] == "Release"));
    // The approval's status says it counted.
    let counted = api
        .wait_for(WAIT, || {
            let a = api.get(
                "greenlight.dev/v1alpha1",
                "Approval",
                "shop",
                "alice-approves",
            )?;
            (!a["status"]["conditions"].is_null()).then_some(a)
        })
        .await
        .expect("the Approval's status is written");
    assert_eq!(
        counted["status"]["conditions"][0]["status"], "True",
        "{counted}"
    );

    // Each image was set exactly once: no double deploy.
    let prod_patches = api
        .requests()
        .iter()
        .filter(|r| is_image_patch(r, "shop-prod", "api:1.0.0"))
        .count();
    assert_eq!(prod_patches, 1);
    shut_down(stop, task).await;
    assert_rbac_covers_every_request(&api);
}

/// Starts the controller on a Pipeline whose dev environment verifies with a test Job,
/// adds a Release, and returns once that Job's create request arrived.
async fn start_until_the_test_job(
    api: &FakeApi,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>, Recorded) {
    seed(api, true);
    let (stop, task) = start(api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    let create = api
        .wait_for_request(WAIT, |r| {
            r.method == http::Method::POST && r.path == "/apis/batch/v1/namespaces/shop-dev/jobs"
        })
        .await
        .expect("the verification test Job is created");
    (stop, task, create)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_job_is_created_and_its_outcome_read_back() {
    let api = FakeApi::start(true).await;
    let (stop, task, create) = start_until_the_test_job(&api).await;
    let labels = &create.body["metadata"]["labels"];
    assert_eq!(labels["greenlight.dev/pipeline"], "shop");
    assert_eq!(labels["greenlight.dev/pipeline-namespace"], "shop");
    assert_eq!(labels["greenlight.dev/purpose"], "verify");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "greenlight");
    assert!(
        create.body["metadata"]["ownerReferences"].is_null(),
        "the Job runs in another namespace than the Pipeline: no owner reference"
    );
    let name = create.body["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        env_status(&api, "dev")["healthy"],
        Value::Null,
        "not healthy while the test runs"
    );

    // The kubelet's part: the Job completes.
    let mut job = api.get("batch/v1", "Job", "shop-dev", &name).unwrap();
    job["status"] = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
    api.put(job);
    wait_healthy(
        &api,
        "dev",
        "shop-1-0-0",
        "dev is healthy once its test Job completed",
    )
    .await;
    let creates = api
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::POST && r.path.ends_with("/jobs"))
        .count();
    assert_eq!(creates, 1, "the Job is created once");
    shut_down(stop, task).await;
    assert_rbac_covers_every_request(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_test_jobs_termination_message_reaches_the_status() {
    let api = FakeApi::start(true).await;
    let (stop, task, create) = start_until_the_test_job(&api).await;
    let name = create.body["metadata"]["name"].as_str().unwrap().to_owned();

    // The kubelet's part: the Job's only Pod ends with what `greenlight loadtest` writes
    // to its termination log, and the Job fails.
    let summary = "failed: error rate 0.0510 > 0.02; 6000 requests at 100 rps for 1m0s, \
                   errors 306 (0.0510), p50 3ms p95 9ms p99 15ms";
    api.put(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{name}-x7k2p"), "namespace": "shop-dev",
                     "labels": {"batch.kubernetes.io/job-name": name}},
        "status": {"containerStatuses": [{
            "name": "test", "image": "registry.example.com/greenlight:0.1.0", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": summary}}
        }]}
    }));
    let mut job = api.get("batch/v1", "Job", "shop-dev", &name).unwrap();
    job["status"] = json!({"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]});
    api.put(job);

    let failed = api
        .wait_for(WAIT, || {
            let marks = env_status(&api, "dev")["failed"].as_array()?.clone();
            marks.into_iter().find(|m| m["release"] == "shop-1-0-0")
        })
        .await
        .expect("dev marks the release failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains(summary),
        "the Pod's termination message is in the status: {reason}"
    );
    let pod_lists = api
        .requests()
        .iter()
        .filter(|r| r.method == http::Method::GET && r.path == "/api/v1/namespaces/shop-dev/pods")
        .count();
    assert_eq!(pod_lists, 1, "the Job's Pods are read once");
    shut_down(stop, task).await;
    assert_rbac_covers_every_request(&api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_decided_before_every_store_has_synced() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    api.put(release("shop-1-0-0", "1.0.0"));
    // The Deployments' first list fails twice: the watcher backs off while the Pipelines
    // and Releases are already cached. A decision then would not see the targets.
    let deployments = "/apis/apps/v1/deployments";
    api.fail(http::Method::GET, deployments, 500, 2);
    let (stop, task) = start(&api, options(None));
    wait_healthy(
        &api,
        "dev",
        "shop-1-0-0",
        "dev deploys once everything is known",
    )
    .await;
    let requests = api.requests();
    let listed = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method == http::Method::GET
                && r.path == deployments
                && !r.query.contains("watch=true")
        })
        .map(|(i, _)| i)
        .nth(2)
        .expect("the third list of Deployments succeeds");
    let first_write = requests
        .iter()
        .position(|r| r.method == http::Method::PATCH)
        .expect("statuses and images are written");
    assert!(
        first_write > listed,
        "the first write (request {first_write}) comes after the Deployments are listed \
         (request {listed})"
    );
    shut_down(stop, task).await;
}

fn lease(holder: Option<&str>) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "greenlight-controller", "namespace": "greenlight"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "renewTime": "2026-11-21T09:00:00.000000Z"}
    })
}

fn fast_lease(identity: &str) -> LeaseConfig {
    LeaseConfig {
        duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry: Duration::from_millis(200),
        ..LeaseConfig::new("greenlight", "greenlight-controller", identity)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_acts_only_once_the_lease_is_handed_over() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    api.put(lease(Some("other-replica")));
    let (stop, task) = start(&api, options(Some(fast_lease("test-replica"))));
    api.put(release("shop-1-0-0", "1.0.0"));
    // The holder keeps renewing for a while: this replica must not act.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut held = api
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                "greenlight",
                "greenlight-controller",
            )
            .unwrap();
        held["spec"]["renewTime"] = json!(jiff::Timestamp::now().to_string());
        api.put(held);
    }
    let writes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == http::Method::PATCH && !r.path.contains("/leases/"))
        .collect();
    assert!(
        writes.is_empty(),
        "a standby wrote: {:?}",
        writes.iter().map(|r| &r.path).collect::<Vec<_>>()
    );

    // The other replica shuts down and hands the Lease over.
    let mut released = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "greenlight",
            "greenlight-controller",
        )
        .unwrap();
    released["spec"]["holderIdentity"] = Value::Null;
    api.put(released);
    api.wait_for_request(WAIT, |r| is_image_patch(r, "shop-dev", "api:1.0.0"))
        .await
        .expect("the new leader acts");
    let held = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "greenlight",
            "greenlight-controller",
        )
        .unwrap();
    assert_eq!(held["spec"]["holderIdentity"], "test-replica");
    assert_eq!(held["spec"]["leaseTransitions"], 1);

    // SIGTERM: this replica hands the Lease over in turn.
    shut_down(stop, task).await;
    let after = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "greenlight",
            "greenlight-controller",
        )
        .unwrap();
    assert!(after["spec"]["holderIdentity"].is_null(), "{after}");
    assert_rbac_covers_every_request(&api);
}

/// [`start`], with `/metrics` served on the returned (loopback) address.
async fn start_serving_metrics(
    api: &FakeApi,
    options: Options,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    std::net::SocketAddr,
) {
    capture_logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let client = api.client();
    let task = tokio::spawn(async move {
        run_serving(client, options, listener, shutdown)
            .await
            .expect("the controller runs");
    });
    (stop, task, addr)
}

/// `GET /metrics`, as Prometheus scrapes it; empty while the server does not answer.
async fn scrape(addr: std::net::SocketAddr) -> String {
    http_get::http_get(addr, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Scrapes `/metrics` until `found` accepts the exposition.
async fn scrape_until<T>(
    addr: std::net::SocketAddr,
    found: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(value) = found(&scrape(addr).await) {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The value of the series `name{labels}` in an exposition (labels in any order).
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let series = format!("{name}{{{}}} ", labels.join(","));
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
}

/// Issue: after a restart, counters and histograms of a known Pipeline did not exist
/// until their first event, so `increase()` missed the first rollback and the dashboard
/// showed "No data". A fresh controller that decides one Pipeline, with nothing else
/// happening, exports every SPEC series for each of its environments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_controller_exports_every_series_of_a_known_pipeline_at_zero() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    let (stop, task, addr) = start_serving_metrics(&api, options(None)).await;
    let shop = |env: &'static str| {
        vec![
            ("namespace", "shop"),
            ("pipeline", "shop"),
            ("environment", env),
        ]
    };
    let text = scrape_until(addr, |text| {
        sample(text, "greenlight_environment_healthy", &shop("prod")).map(|_| text.to_owned())
    })
    .await
    .unwrap_or_else(|| {
        let requests: Vec<String> = api
            .requests()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.query))
            .collect();
        panic!(
            "the Pipeline is decided and its gauges exported; requests:\n{}",
            requests.join("\n")
        )
    });
    for env in ["dev", "prod"] {
        let with = |extra: (&'static str, &'static str)| {
            let mut labels = shop(env);
            labels.push(extra);
            labels
        };
        for result in ["succeeded", "failed", "rolled_back", "superseded"] {
            assert_eq!(
                sample(
                    &text,
                    "greenlight_promotions_total",
                    &with(("result", result))
                ),
                Some(0.0),
                "{env}: promotions {result}\n{text}"
            );
        }
        for trigger in ["verification", "unhealthy", "manual"] {
            assert_eq!(
                sample(
                    &text,
                    "greenlight_rollbacks_total",
                    &with(("trigger", trigger))
                ),
                Some(0.0),
                "{env}: rollbacks {trigger}"
            );
        }
        for histogram in [
            "greenlight_promotion_duration_seconds_count",
            "greenlight_lead_time_seconds_count",
            "greenlight_time_to_restore_seconds_count",
        ] {
            assert_eq!(
                sample(&text, histogram, &shop(env)),
                Some(0.0),
                "{env}: {histogram}"
            );
        }
        assert_eq!(
            sample(&text, "greenlight_drift_repairs_total", &shop(env)),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "greenlight_environment_healthy", &shop(env)),
            Some(1.0),
            "{env}: its baseline runs and is healthy"
        );
        assert_eq!(
            sample(&text, "greenlight_environment_degraded", &shop(env)),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                "greenlight_environment_info",
                &[shop(env), vec![("version", "baseline"), ("release", "")]].concat()
            ),
            Some(1.0),
            "{env}: what runs there"
        );
        assert_eq!(
            sample(
                &text,
                "greenlight_promotion_blocked_seconds",
                &with(("gate", "environment"))
            ),
            Some(0.0),
            "{env}: nothing waits"
        );
    }
    // prod's approval gate can block it; dev has no gates of its own.
    let prod_approvals = [shop("prod"), vec![("gate", "approvals")]].concat();
    assert_eq!(
        sample(
            &text,
            "greenlight_promotion_blocked_seconds",
            &prod_approvals
        ),
        Some(0.0)
    );
    let dev_approvals = [shop("dev"), vec![("gate", "approvals")]].concat();
    assert_eq!(
        sample(
            &text,
            "greenlight_promotion_blocked_seconds",
            &dev_approvals
        ),
        None
    );
    for gate in ["approvals", "schedule", "tests"] {
        for result in ["pass", "block"] {
            assert_eq!(
                sample(
                    &text,
                    "greenlight_gate_evaluations_total",
                    &[("gate", gate), ("result", result)]
                ),
                Some(0.0),
                "gate evaluations {gate} {result}"
            );
        }
    }
    assert!(
        sample(
            &text,
            "greenlight_reconcile_total",
            &[("kind", "Pipeline"), ("result", "ok")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &text,
            "greenlight_reconcile_duration_seconds_count",
            &[("kind", "Pipeline")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.path.contains("/deployments/") && r.method != http::Method::GET),
        "nothing was deployed: the series exist because the Pipeline is known"
    );
    shut_down(stop, task).await;
}

/// A replica that loses the Lease stops reporting environments, so two replicas never
/// both report one; what it counted stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_drops_its_environment_gauges() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    let (stop, task, addr) =
        start_serving_metrics(&api, options(Some(fast_lease("test-replica")))).await;
    let dev = [
        ("namespace", "shop"),
        ("pipeline", "shop"),
        ("environment", "dev"),
    ];
    scrape_until(addr, |text| {
        sample(text, "greenlight_environment_healthy", &dev)
    })
    .await
    .expect("the leader reports dev");

    // Another replica holds the Lease now (this one's renewal is refused).
    let mut taken = lease(Some("other-replica"));
    taken["spec"]["renewTime"] = json!(jiff::Timestamp::now().to_string());
    taken["spec"]["leaseDurationSeconds"] = json!(30);
    let current = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "greenlight",
            "greenlight-controller",
        )
        .unwrap();
    taken["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    api.put(taken);
    let text = scrape_until(addr, |text| {
        sample(text, "greenlight_environment_healthy", &dev)
            .is_none()
            .then(|| text.to_owned())
    })
    .await
    .expect("the deposed replica stops reporting dev");
    for gauge in [
        "greenlight_environment_info",
        "greenlight_environment_healthy",
        "greenlight_environment_degraded",
        "greenlight_promotion_blocked_seconds",
        "greenlight_rollout_unobserved_seconds",
    ] {
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with(gauge) && l.contains("pipeline=\"shop\"")),
            "{gauge} still reported after losing the Lease:\n{text}"
        );
    }
    assert!(
        sample(
            &text,
            "greenlight_reconcile_total",
            &[("kind", "Pipeline"), ("result", "ok")]
        )
        .is_some_and(|n| n >= 1.0),
        "counters stay: they count what this replica did"
    );
    shut_down(stop, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_never_lead_at_once_and_a_silent_leader_is_replaced() {
    let api = FakeApi::start(false).await;
    let (a, b) = (Leadership::standby(), Leadership::standby());
    let (stop_a, shutdown_a) = watch::channel(false);
    let (_stop_b, shutdown_b) = watch::channel(false);
    let task_a =
        tokio::spawn(Elector::new(api.client(), fast_lease("a"), a.clone()).run(shutdown_a));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let task_b =
        tokio::spawn(Elector::new(api.client(), fast_lease("b"), b.clone()).run(shutdown_b));
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!(a.is_leading() && b.is_leading()), "two leaders at once");
    }
    assert!(
        a.is_leading() && !b.is_leading(),
        "the first replica leads, the second waits"
    );

    // `a` stops renewing without handing over (a crash): `b` takes over after a lease
    // duration, not before.
    task_a.abort();
    let crashed_at = std::time::Instant::now();
    api.wait_for(WAIT, || b.is_leading().then_some(()))
        .await
        .expect("the standby takes over an expired Lease");
    let waited = crashed_at.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "took over after only {waited:?}"
    );
    drop(stop_a);
    task_b.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_api_server_is_retried_with_backoff_and_nothing_is_lost() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    let path = "/apis/apps/v1/namespaces/shop-dev/deployments/api";
    // 500: kube's client itself retries 429, 503 and 504 a few times; this tests our backoff.
    api.fail(http::Method::PATCH, path, 500, 3);
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    wait_healthy(
        &api,
        "dev",
        "shop-1-0-0",
        "dev gets the release despite the outage",
    )
    .await;
    let attempts: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == http::Method::PATCH && r.path == path)
        .map(|r| r.at)
        .collect();
    assert_eq!(attempts.len(), 4, "three failures, then one success");
    // Backoff, not a hot loop: once the failures repeat, a retry waits 2 s and more. (A
    // retry may come sooner when a watched object changed meanwhile, such as the statuses
    // written before the failed patch coming back through the watch: a change always
    // reconciles. Those settle after the first attempts.)
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().any(|gap| *gap >= Duration::from_millis(1900)),
        "retried after {gaps:?}: {:#?}",
        api.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    shut_down(stop, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pipeline_gets_a_condition_and_waits_for_a_fix() {
    let api = FakeApi::start(true).await;
    seed(&api, false);
    let mut broken = pipeline(false);
    broken["spec"]["environments"][1]["gates"]["schedule"] =
        json!([{"cron": "61 * * * *", "duration": "1h"}]);
    api.put(broken);
    api.put(release("shop-1-0-0", "1.0.0"));
    let (stop, task) = start(&api, options(None));
    let ready = api
        .wait_for(WAIT, || {
            let p = api.get("greenlight.dev/v1alpha1", "Pipeline", "shop", "shop")?;
            p["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")
                .cloned()
        })
        .await
        .expect("the Pipeline gets a Ready condition");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("spec.environments[1].gates.schedule[0].cron"),
        "the message names the field: {message}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.path.contains("/deployments/")),
        "an invalid Pipeline deploys nothing"
    );

    api.put(pipeline(false));
    api.wait_for_request(WAIT, |r| is_image_patch(r, "shop-dev", "api:1.0.0"))
        .await
        .expect("the fixed Pipeline deploys");
    shut_down(stop, task).await;
}

/// A workload of `kind` running `image` in container `api` (apps/v1 or batch/v1).
fn workload(kind: &str, namespace: &str, name: &str, image: &str) -> Value {
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": {"containers": [
        {"name": "api", "image": image}]}});
    let spec = match kind {
        "CronJob" => {
            json!({"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        _ => {
            json!({"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template})
        }
    };
    let api_version = if kind == "CronJob" {
        "batch/v1"
    } else {
        "apps/v1"
    };
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// One environment of several kinds (a StatefulSet and the CronJob of its nightly job),
/// and a prod of a DaemonSet: each gets its images-only apply at its own path, each
/// kind's controller (played by the fake API server) reports the rollout in its own
/// status fields, and the release goes all the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_cronjobs_and_daemonsets_promote_through_their_own_status() {
    let api = FakeApi::start(true).await;
    let old = "registry.example.com/shop/api:0.9.0";
    api.put(workload("StatefulSet", "shop-dev", "db-api", old));
    api.put(workload("CronJob", "shop-dev", "nightly", old));
    api.put(workload("DaemonSet", "shop-prod", "edge", old));
    api.put(json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "dev", "accepts": ["main"],
             "target": {"namespace": "shop-dev", "workloads": [
                 {"kind": "StatefulSet", "name": "db-api", "container": "api"},
                 {"kind": "CronJob", "name": "nightly", "container": "api"}]}},
            {"name": "prod", "upstream": ["dev"],
             "target": {"namespace": "shop-prod", "workloads": [
                 {"kind": "DaemonSet", "name": "edge", "container": "api"}]}}
        ]}
    }));
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    wait_healthy(&api, "prod", "shop-1-0-0", "the release reaches prod").await;

    let new = "registry.example.com/shop/api:1.0.0";
    let pod = json!({"spec": {"containers": [{"name": "api", "image": new}]}});
    for (path, body) in [
        (
            "/apis/apps/v1/namespaces/shop-dev/statefulsets/db-api",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "db-api", "namespace": "shop-dev"},
                   "spec": {"template": pod}}),
        ),
        (
            "/apis/batch/v1/namespaces/shop-dev/cronjobs/nightly",
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                   "metadata": {"name": "nightly", "namespace": "shop-dev"},
                   "spec": {"jobTemplate": {"spec": {"template": pod}}}}),
        ),
        (
            "/apis/apps/v1/namespaces/shop-prod/daemonsets/edge",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                   "metadata": {"name": "edge", "namespace": "shop-prod"},
                   "spec": {"template": pod}}),
        ),
    ] {
        let patches: Vec<Recorded> = api
            .requests()
            .into_iter()
            .filter(|r| r.method == http::Method::PATCH && r.path == path)
            .collect();
        assert_eq!(patches.len(), 1, "{path} is patched once: {patches:?}");
        assert_eq!(patches[0].body, body, "{path}: images only");
        assert_eq!(patches[0].content_type, "application/apply-patch+yaml");
        assert!(patches[0].query.contains("fieldManager=greenlight"));
    }
    let dev = env_status(&api, "dev");
    assert_eq!(dev["current"]["release"], "shop-1-0-0", "{dev}");
    assert_eq!(dev["healthy"], true, "{dev}");
    shut_down(stop, task).await;
    assert_rbac_covers_every_request(&api);
}

/// dev in the controller's cluster; prod in a second cluster (a second fake API server),
/// reached through the kubeconfig in the Secret `shop/prod-cluster`.
fn two_cluster_pipeline() -> Value {
    json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "dev", "accepts": ["main"],
             "target": {"namespace": "shop-dev", "deployments": [{"name": "api", "container": "api"}]}},
            {"name": "prod", "upstream": ["dev"],
             "target": {"namespace": "shop-prod", "deployments": [{"name": "api", "container": "api"}],
                        "cluster": {"secretRef": {"name": "prod-cluster"}}}}
        ]}
    })
}

/// Issue: environments in other clusters. prod's cluster is a second API server: the
/// release is deployed there; that cluster going away sets `ClusterUnreachable` while dev
/// keeps deploying; when it comes back, the waiting promotion completes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prod_in_a_second_cluster_is_promoted_there_and_waits_out_its_outage() {
    let local = FakeApi::start(true).await;
    let remote = FakeApi::start(true).await;
    local.put(deployment(
        "shop-dev",
        "registry.example.com/shop/api:0.9.0",
    ));
    remote.put(deployment(
        "shop-prod",
        "registry.example.com/shop/api:0.9.0",
    ));
    local.put(remote.kubeconfig_secret("shop", "prod-cluster"));
    local.put(two_cluster_pipeline());
    let (stop, task) = start(&local, options(None));

    local.put(release("shop-1-0-0", "1.0.0"));
    wait_healthy(
        &local,
        "prod",
        "shop-1-0-0",
        "1.0.0 reaches prod, in the second cluster",
    )
    .await;
    assert!(
        remote
            .requests()
            .iter()
            .any(|r| is_image_patch(r, "shop-prod", "api:1.0.0")),
        "prod's image was set in the second cluster"
    );
    assert!(
        !local
            .requests()
            .iter()
            .any(|r| r.path.contains("/namespaces/shop-prod/")),
        "nothing of prod was asked of the controller's own cluster"
    );
    assert_eq!(
        condition_of(&local, "ClusterUnreachable")["status"],
        "False"
    );

    // The second cluster goes away: prod waits and says why; dev keeps deploying.
    remote.set_down(true);
    local
        .wait_for(WAIT, || {
            (condition_of(&local, "ClusterUnreachable")["status"] == "True").then_some(())
        })
        .await
        .expect("ClusterUnreachable turns True");
    let message = condition_of(&local, "ClusterUnreachable")["message"].to_string();
    assert!(message.contains("prod (cluster prod-cluster"), "{message}");
    local.put(release("shop-1-1-0", "1.1.0"));
    wait_healthy(
        &local,
        "dev",
        "shop-1-1-0",
        "dev deploys while prod's cluster is away",
    )
    .await;
    assert_eq!(
        env_status(&local, "prod")["current"]["release"],
        "shop-1-0-0"
    );

    // It comes back: the waiting promotion completes by itself.
    remote.set_down(false);
    wait_healthy(
        &local,
        "prod",
        "shop-1-1-0",
        "1.1.0 reaches prod once its cluster answers",
    )
    .await;
    assert_eq!(
        condition_of(&local, "ClusterUnreachable")["status"],
        "False"
    );
    assert_eq!(
        remote
            .requests()
            .iter()
            .filter(|r| is_image_patch(r, "shop-prod", "api:1.1.0"))
            .count(),
        1,
        "prod's image was set once"
    );
    shut_down(stop, task).await;
    assert_rbac_covers_every_request(&local);
}

fn http_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": "shop-prod"},
        "spec": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                 "hostnames": ["shop.example.com"],
                 "rules": [{"backendRefs": [{"name": "api-stable", "port": 8080, "weight": 100},
                                            {"name": "api-canary", "port": 8080, "weight": 0}]}]}
    })
}

/// A fake API server serving HTTPRoutes, with prod's Deployment, the route `shop` and a
/// Pipeline whose prod has one canary `step` by that route.
async fn canary_by_route(step: Value) -> FakeApi {
    let api = FakeApi::start(true).await;
    api.serve("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute");
    api.put(deployment(
        "shop-prod",
        "registry.example.com/shop/api:0.9.0",
    ));
    api.put(http_route());
    api.put(json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "prod", "accepts": ["main"],
             "target": {"namespace": "shop-prod", "deployments": [{"name": "api", "container": "api"}]},
             "rollout": {"steps": [step],
                         "gatewayAPI": {"httpRoute": "shop", "stableService": "api-stable",
                                        "canaryService": "api-canary"}}}
        ]}
    }));
    api
}

fn route_weights(route: &Value) -> Vec<i64> {
    route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["weight"].as_i64().unwrap())
        .collect()
}

/// A canary step by Gateway API weights, the whole loop: the controller finds HTTPRoutes
/// served (discovery), watches the route, applies the canary, sends it the step's share
/// only once the canary is ready (seen through the watch), gives it back to the stable
/// Service before deleting the canary, and changes nothing else of the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_step_by_route_shifts_traffic_after_the_canary_and_back_before_its_deletion() {
    let api = canary_by_route(json!({"weight": 20})).await;
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    wait_healthy(&api, "prod", "shop-1-0-0", "the release passes its step").await;
    api.wait_for(WAIT, || {
        api.get("apps/v1", "Deployment", "shop-prod", "api-canary")
            .is_none()
            .then_some(())
    })
    .await
    .expect("the canary is deleted");
    shut_down(stop, task).await;

    let requests = api.requests();
    let position = |what: &str, found: &dyn Fn(&Recorded) -> bool| {
        requests
            .iter()
            .position(found)
            .unwrap_or_else(|| panic!("no request {what}"))
    };
    let route_path = "/apis/gateway.networking.k8s.io/v1/namespaces/shop-prod/httproutes/shop";
    let canary_path = "/apis/apps/v1/namespaces/shop-prod/deployments/api-canary";
    let route_patch = |weight: u32| {
        move |r: &Recorded| {
            r.method == http::Method::PATCH
                && r.path == route_path
                && r.body.as_array().is_some_and(|ops| {
                    ops.iter().any(|op| {
                        op["path"].as_str().unwrap().ends_with("/1/weight") && op["value"] == weight
                    })
                })
        }
    };
    let discovered = position("asking whether HTTPRoutes are served", &|r| {
        r.method == http::Method::GET && r.path == "/apis/gateway.networking.k8s.io/v1"
    });
    let created = position("applying the canary", &|r| {
        r.method == http::Method::PATCH && r.path == canary_path
    });
    let shifted = position("sending the canary 20%", &route_patch(20));
    let withdrawn = position("sending the canary 0%", &route_patch(0));
    let deleted = position("deleting the canary", &|r| {
        r.method == http::Method::DELETE && r.path == canary_path
    });
    assert!(discovered < created, "discovery comes with the watches");
    assert!(
        created < shifted,
        "the canary exists before it gets traffic"
    );
    assert!(
        shifted < withdrawn && withdrawn < deleted,
        "traffic goes back before the canary goes"
    );
    let shift = &requests[shifted];
    assert_eq!(shift.content_type, "application/json-patch+json");
    assert!(
        shift.query.contains("fieldManager=greenlight"),
        "{}",
        shift.query
    );

    let route = api
        .get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "shop-prod",
            "shop",
        )
        .unwrap();
    assert_eq!(route_weights(&route), [100, 0]);
    let mut untouched = route.clone();
    untouched["metadata"] = http_route()["metadata"].clone();
    assert_eq!(untouched, http_route(), "nothing else of the route changed");
    assert_eq!(
        api.get("apps/v1", "Deployment", "shop-prod", "api")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/shop/api:1.0.0"
    );
    assert_rbac_covers_every_request(&api);
}

/// A Pipeline deleted during a canary step leaves nothing behind: nothing owns the canary
/// (an owner reference cannot cross namespaces), so the controller sends the route's
/// traffic back to the stable Service and deletes the canary itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_deleted_mid_step_leaves_no_canary_and_no_canary_traffic() {
    let api = canary_by_route(json!({"weight": 20, "pause": "1h"})).await;
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    api.wait_for(WAIT, || {
        let route = api.get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "shop-prod",
            "shop",
        )?;
        (route_weights(&route) == [80, 20]).then_some(())
    })
    .await
    .expect("the step sends the canary its 20%");
    assert!(
        api.get("apps/v1", "Deployment", "shop-prod", "api-canary")
            .is_some()
    );

    let pipelines: kube::Api<greenlight::api::Pipeline> =
        kube::Api::namespaced(api.client(), "shop");
    pipelines
        .delete("shop", &Default::default())
        .await
        .expect("the Pipeline is deleted");
    api.wait_for(WAIT, || {
        api.get("apps/v1", "Deployment", "shop-prod", "api-canary")
            .is_none()
            .then_some(())
    })
    .await
    .expect("the canary is deleted with its Pipeline");
    let route = api
        .get(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "shop-prod",
            "shop",
        )
        .unwrap();
    assert_eq!(
        route_weights(&route),
        [100, 0],
        "all traffic back to stable"
    );
    assert_eq!(
        api.get("apps/v1", "Deployment", "shop-prod", "api")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/shop/api:0.9.0",
        "the stable Deployment never took the release"
    );
    shut_down(stop, task).await;
    // All but the test's own deletion of the Pipeline.
    let by_the_test =
        |r: &Recorded| r.method == http::Method::DELETE && r.path.ends_with("/pipelines/shop");
    assert_rbac_covers(
        api.requests()
            .into_iter()
            .filter(|r| !by_the_test(r))
            .collect(),
    );
}

/// A canary that becomes ready after it was created (pods take time) ends its step's wait
/// at once: its Deployment's changes reconcile the Pipeline it stands for, not only the
/// target's (before, the step went on only at the next unrelated event, or at its
/// progress deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_becoming_ready_ends_its_steps_wait_at_once() {
    let api = FakeApi::start(false).await;
    api.put(deployment(
        "shop-prod",
        "registry.example.com/shop/api:0.9.0",
    ));
    api.catch_up("shop-prod", "api");
    api.put(json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            {"name": "prod", "accepts": ["main"],
             "target": {"namespace": "shop-prod", "deployments": [{"name": "api", "container": "api"}]},
             "verify": {"progressDeadline": "10m"},
             "rollout": {"steps": [{"weight": 50}]}}
        ]}
    }));
    let (stop, task) = start(&api, options(None));
    api.put(release("shop-1-0-0", "1.0.0"));
    api.wait_for(WAIT, || {
        api.get("apps/v1", "Deployment", "shop-prod", "api-canary")
            .map(|_| ())
    })
    .await
    .expect("the canary is created");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !api.requests()
            .iter()
            .any(|r| is_image_patch(r, "shop-prod", "api:1.0.0")),
        "the stable Deployment waits for the canary"
    );

    // Its pods become ready: the step passes and the stable Deployment takes the release.
    api.catch_up("shop-prod", "api-canary");
    api.wait_for_request(WAIT, |r| is_image_patch(r, "shop-prod", "api:1.0.0"))
        .await
        .expect("the step ends as soon as the canary is ready");
    shut_down(stop, task).await;
}
