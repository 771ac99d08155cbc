//! Connections to other clusters, against two fake API servers on loopback: the
//! controller's own cluster, which holds the kubeconfig Secret, and the remote one, which
//! runs the target workloads. (The real API server runs in `tests/e2e.rs`.)

mod support;

use std::{collections::BTreeSet, time::Duration};

use greenlight::{
    api::Pipeline,
    controller::clusters::{ClusterError, Clusters, KubeconfigSecret, Reach, Remote},
    engine::WorkloadKind,
    metrics::Metrics,
};
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop-prod"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
                    {"name": "api", "image": image}]}}}
    })
}

fn prod() -> Remote {
    Remote {
        secret: KubeconfigSecret {
            namespace: "shop".into(),
            name: "prod-cluster".into(),
            key: "value".into(),
        },
        namespace: "shop-prod".into(),
    }
}

/// Polls until `check` holds (every 20 ms, at most [`WAIT`]).
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn image_there(clusters: &Clusters) -> Option<String> {
    let stores = clusters.stores(&prod())?;
    let view = stores
        .workloads
        .view(WorkloadKind::Deployment, "shop-prod", "api")?;
    Some(view.containers.first()?.image.clone())
}

/// The value of `name`'s series for `shop/prod-cluster` and `shop-prod`, if it exists.
fn sample(metrics: &Metrics, name: &str) -> Option<f64> {
    let text = metrics.render();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            l.contains("namespace=\"shop\"")
                && l.contains("cluster=\"prod-cluster\"")
                && l.contains("target_namespace=\"shop-prod\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Drains the triggers; whether `pipeline` was among them.
fn triggered(
    rx: &mut mpsc::UnboundedReceiver<ObjectRef<Pipeline>>,
    pipeline: &ObjectRef<Pipeline>,
) -> bool {
    let mut seen = false;
    while let Ok(p) = rx.try_recv() {
        seen |= &p == pipeline;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_namespace_is_watched_through_its_secret_and_comes_back_after_an_outage() {
    let local = FakeApi::start(true).await;
    let remote = FakeApi::start(true).await;
    local.put(remote.kubeconfig_secret("shop", "prod-cluster"));
    remote.put(deployment("registry.example.com/shop/api:1.0.0"));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let metrics = Metrics::new();
    let clusters = Clusters::new(local.client(), tx)
        .with_secret_check(Duration::from_millis(100))
        .with_metrics(metrics.clone());
    let shop = ObjectRef::<Pipeline>::new("shop").within("shop");

    clusters.use_only(&shop, &BTreeSet::from([prod()]));
    until("the connection to be ready", || {
        clusters.reach(&prod()) == Some(Reach::Ready)
    })
    .await;
    assert_eq!(
        image_there(&clusters).as_deref(),
        Some("registry.example.com/shop/api:1.0.0"),
        "the remote cluster's Deployment is in the connection's store"
    );
    assert!(
        triggered(&mut rx, &shop),
        "being connected reconciles the Pipeline"
    );
    assert_eq!(sample(&metrics, "greenlight_cluster_connected"), Some(1.0));
    assert_eq!(
        sample(&metrics, "greenlight_cluster_connection_failures_total"),
        Some(0.0)
    );
    // The controller's own cluster was asked for the Secret and nothing else; the
    // remote one was asked only about the target namespace.
    for r in local.requests() {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/api/v1/namespaces/shop/secrets/prod-cluster")
        );
    }
    for r in remote.requests() {
        assert!(
            r.path.contains("/namespaces/shop-prod/"),
            "{} {}",
            r.method,
            r.path
        );
    }

    // A change there reaches the store and reconciles the Pipeline.
    remote.put(deployment("registry.example.com/shop/api:1.1.0"));
    until("the changed image to reach the store", || {
        image_there(&clusters).as_deref() == Some("registry.example.com/shop/api:1.1.0")
    })
    .await;
    assert!(
        triggered(&mut rx, &shop),
        "a change there reconciles the Pipeline"
    );

    // The cluster goes away: the connection says why, and its stores are not used.
    remote.set_down(true);
    until("the connection to be unreachable", || {
        matches!(
            clusters.reach(&prod()),
            Some(Reach::Unreachable {
                error: ClusterError::Unreachable { .. },
                ..
            })
        )
    })
    .await;
    assert_eq!(
        image_there(&clusters),
        None,
        "an unreachable cluster's caches are not read"
    );
    assert_eq!(sample(&metrics, "greenlight_cluster_connected"), Some(0.0));
    assert!(sample(&metrics, "greenlight_cluster_connection_failures_total") >= Some(1.0));
    assert!(
        triggered(&mut rx, &shop),
        "losing the cluster reconciles the Pipeline"
    );

    // It comes back: the connection is made again by itself, with what changed meanwhile.
    remote.set_down(false);
    remote.put(deployment("registry.example.com/shop/api:1.2.0"));
    until("the connection to be ready again", || {
        image_there(&clusters).as_deref() == Some("registry.example.com/shop/api:1.2.0")
    })
    .await;
    assert!(
        triggered(&mut rx, &shop),
        "the cluster's return reconciles the Pipeline"
    );

    // The Secret changes (the cluster moved, say): the connection follows it by itself.
    let moved = FakeApi::start(true).await;
    moved.put(deployment("registry.example.com/shop/api:2.0.0"));
    local.put(moved.kubeconfig_secret("shop", "prod-cluster"));
    until("the connection to follow the changed Secret", || {
        image_there(&clusters).as_deref() == Some("registry.example.com/shop/api:2.0.0")
    })
    .await;

    // No Pipeline uses it any more: it is dropped.
    clusters.use_only(&shop, &BTreeSet::new());
    assert!(clusters.is_empty());
    assert_eq!(
        sample(&metrics, "greenlight_cluster_connected"),
        None,
        "its series go"
    );
    assert_eq!(clusters.reach(&prod()), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_then_refused_access_are_reported_and_retried_until_they_are_fixed() {
    let local = FakeApi::start(true).await;
    let remote = FakeApi::start(true).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let clusters = Clusters::new(local.client(), tx);
    let shop = ObjectRef::<Pipeline>::new("shop").within("shop");
    clusters.use_only(&shop, &BTreeSet::from([prod()]));
    until("the missing Secret to be reported", || {
        matches!(
            clusters.reach(&prod()),
            Some(Reach::Unreachable {
                error: ClusterError::Secret { .. },
                ..
            })
        )
    })
    .await;

    // The Secret appears, but the remote cluster refuses the credentials' access to
    // StatefulSets there (the Role lacks them).
    remote.refuse(
        http::Method::GET,
        "/apis/apps/v1/namespaces/shop-prod/statefulsets",
        403,
        "Forbidden",
        "statefulsets.apps is forbidden: User \"greenlight\" cannot list resource \"statefulsets\"",
        2,
    );
    local.put(remote.kubeconfig_secret("shop", "prod-cluster"));
    until("the refusal to be reported", || {
        matches!(
            clusters.reach(&prod()),
            Some(Reach::Unreachable {
                error: ClusterError::Unauthorised { .. },
                ..
            })
        )
    })
    .await;
    let Some(Reach::Unreachable { error, .. }) = clusters.reach(&prod()) else {
        unreachable!()
    };
    assert_eq!(
        error.to_string(),
        "the cluster of Secret shop/prod-cluster key \"value\" refuses access: \
         statefulsets.apps is forbidden: User \"greenlight\" cannot list resource \"statefulsets\""
    );
    // The Role is fixed (the refusals run out): connected, by itself.
    until("the connection to be ready", || {
        clusters.reach(&prod()) == Some(Reach::Ready)
    })
    .await;
}
