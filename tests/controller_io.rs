//! The controller's writes against a mocked API server: the exact requests it sends and
//! how it takes the answers (the controller-rs `ApiServerVerifier` pattern).

use std::time::Duration;

use greenlight::{
    api::{Pipeline, PipelineStatus},
    controller::actions::{Error, Executor},
    engine::{Action, CanaryRoute, ContainerImage, JobRequest, RouteRef, WorkloadKind},
};
use http::{Method, Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn pipeline() -> Pipeline {
    serde_json::from_value(json!({
        "apiVersion": "greenlight.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop", "uid": "0b6f4d1e-uid"},
        "spec": {"environments": [{"name": "dev", "accepts": ["main"], "target": {"namespace": "shop", "deployments": [{"name": "api"}]}}]}
    }))
    .unwrap()
}

fn executor() -> (Executor, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (
        Executor::new(Client::new(service, "default"), &pipeline()),
        handle,
    )
}

/// One expected request: method, path, query parts; answers `status` with `body`.
async fn expect(
    handle: &mut ApiHandle,
    method: Method,
    path: &str,
    query: &[&str],
    status: u16,
    body: Value,
) -> Value {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the executor sends a request");
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().path(), path);
    let actual_query = request.uri().query().unwrap_or_default().to_owned();
    for part in query {
        assert!(
            actual_query.split('&').any(|q| q == *part),
            "{part} missing from ?{actual_query}"
        );
    }
    let content_type = request
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let sent: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    if method == Method::PATCH {
        // Every write is a server-side apply but the HTTPRoute weights' (see
        // `controller::routes` for why).
        let expected = if path.contains("/httproutes/") {
            "application/json-patch+json"
        } else {
            "application/apply-patch+yaml"
        };
        assert_eq!(content_type.as_deref(), Some(expected));
    }
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    sent
}

fn status_body(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code})
}

#[tokio::test]
async fn images_are_set_by_server_side_apply_touching_only_the_container_image() {
    let (executor, mut handle) = executor();
    let action = Action::SetImages {
        workload: greenlight::engine::WorkloadRef {
            cluster: None,
            kind: greenlight::engine::WorkloadKind::Deployment,
            namespace: "shop-prod".into(),
            name: "api".into(),
        },
        images: vec![ContainerImage {
            container: "api".into(),
            image: "registry.example.com/shop/api:1.4.2".into(),
        }],
    };
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop-prod/deployments/api",
            &["fieldManager=greenlight", "force=true"],
            200,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}}),
        )
        .await
    });
    executor.apply(&action).await.unwrap();
    let sent = server.await.unwrap();
    assert_eq!(
        sent,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop-prod"},
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "registry.example.com/shop/api:1.4.2"}]}}}
        }),
        "nothing but the image: no replicas, no selector, no other container field"
    );
}

/// Each kind's images live in its own place: the apply body names the kind and reaches
/// the pod template's containers through that kind's path, and holds nothing else.
#[tokio::test]
async fn every_kind_gets_an_images_only_apply_body_at_its_own_path() {
    let cases = [
        (
            WorkloadKind::StatefulSet,
            "/apis/apps/v1/namespaces/shop-prod/statefulsets/db",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "db", "namespace": "shop-prod"},
                   "spec": {"template": {"spec": {"containers": [{"name": "db", "image": "db:2"}]}}}}),
        ),
        (
            WorkloadKind::DaemonSet,
            "/apis/apps/v1/namespaces/shop-prod/daemonsets/db",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                   "metadata": {"name": "db", "namespace": "shop-prod"},
                   "spec": {"template": {"spec": {"containers": [{"name": "db", "image": "db:2"}]}}}}),
        ),
        (
            WorkloadKind::CronJob,
            "/apis/batch/v1/namespaces/shop-prod/cronjobs/db",
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
                   "metadata": {"name": "db", "namespace": "shop-prod"},
                   "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "db:2"}]}}}}}}),
        ),
    ];
    for (kind, path, body) in cases {
        let (executor, mut handle) = executor();
        let action = Action::SetImages {
            workload: greenlight::engine::WorkloadRef {
                cluster: None,
                kind,
                namespace: "shop-prod".into(),
                name: "db".into(),
            },
            images: vec![ContainerImage {
                container: "db".into(),
                image: "db:2".into(),
            }],
        };
        let answer = json!({"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": {"name": "db"}});
        let server = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::PATCH,
                path,
                &["fieldManager=greenlight", "force=true"],
                200,
                answer,
            )
            .await
        });
        executor.apply(&action).await.unwrap();
        assert_eq!(server.await.unwrap(), body, "{kind}");
    }
}

fn job_request(namespace: &str) -> JobRequest {
    JobRequest {
        cluster: None,
        namespace: namespace.into(),
        name: "shop-1-4-2-prod-migrate-0123456789".into(),
        labels: [("greenlight.dev/pipeline".to_owned(), "shop".to_owned())].into(),
        spec: json!({"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}}}),
        timeout: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn jobs_are_created_with_their_deterministic_name_labels_and_owner() {
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::POST,
            "/apis/batch/v1/namespaces/shop/jobs",
            &[],
            201,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}}),
        )
        .await
    });
    executor
        .apply(&Action::CreateJob(job_request("shop")))
        .await
        .unwrap();
    let sent = server.await.unwrap();
    assert_eq!(
        sent["metadata"]["name"],
        "shop-1-4-2-prod-migrate-0123456789"
    );
    assert_eq!(
        sent["metadata"]["labels"]["greenlight.dev/pipeline"],
        "shop"
    );
    assert_eq!(
        sent["metadata"]["ownerReferences"][0],
        json!({"apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline", "name": "shop", "uid": "0b6f4d1e-uid", "controller": true, "blockOwnerDeletion": true})
    );
    assert_eq!(sent["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

#[tokio::test]
async fn a_job_that_already_exists_counts_as_created() {
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::POST,
            "/apis/batch/v1/namespaces/shop/jobs",
            &[],
            409,
            status_body(409, "AlreadyExists"),
        )
        .await
    });
    executor
        .apply(&Action::CreateJob(job_request("shop")))
        .await
        .expect("409 is success for a deterministic name");
    server.await.unwrap();
}

#[tokio::test]
async fn jobs_in_other_namespaces_have_no_owner_reference() {
    // Owner references cannot cross namespaces; the labels tie the Job to its pipeline.
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::POST,
            "/apis/batch/v1/namespaces/shop-staging/jobs",
            &[],
            201,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}}),
        )
        .await
    });
    executor
        .apply(&Action::CreateJob(job_request("shop-staging")))
        .await
        .unwrap();
    let sent = server.await.unwrap();
    assert!(sent["metadata"].get("ownerReferences").is_none(), "{sent}");
}

#[tokio::test]
async fn deleting_a_job_that_is_gone_is_success_and_other_errors_are_reported() {
    let (executor, mut handle) = executor();
    let action = Action::DeleteJob {
        cluster: None,
        namespace: "shop".into(),
        name: "old".into(),
    };
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::DELETE,
            "/apis/batch/v1/namespaces/shop/jobs/old",
            &[],
            404,
            status_body(404, "NotFound"),
        )
        .await;
        expect(
            &mut handle,
            Method::DELETE,
            "/apis/batch/v1/namespaces/shop/jobs/old",
            &[],
            403,
            status_body(403, "Forbidden"),
        )
        .await;
    });
    executor
        .apply(&action)
        .await
        .expect("404 means already deleted");
    let error = executor.apply(&action).await.unwrap_err();
    assert_eq!(error.metric_label(), "api_error");
    assert!(error.is_transient());
    assert!(error.to_string().contains("delete Job shop/old"), "{error}");
    server.await.unwrap();
}

#[tokio::test]
async fn the_pipeline_status_is_applied_on_the_status_subresource() {
    let (executor, mut handle) = executor();
    let status = PipelineStatus {
        summary: Some("dev=1.4.2".into()),
        observed_generation: Some(3),
        ..Default::default()
    };
    let server = tokio::spawn(async move {
        expect(&mut handle, Method::PATCH, "/apis/greenlight.dev/v1alpha1/namespaces/shop/pipelines/shop/status", &["fieldManager=greenlight", "force=true"], 200, json!({"apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "shop"}, "spec": {"environments": []}})).await
    });
    executor
        .write_pipeline_status("shop", &status)
        .await
        .unwrap();
    let sent = server.await.unwrap();
    assert_eq!(
        sent,
        json!({"apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline", "status": {"observedGeneration": 3, "summary": "dev=1.4.2"}})
    );
}

#[tokio::test]
async fn a_release_status_write_for_a_deleted_release_is_not_an_error() {
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::PATCH,
            "/apis/greenlight.dev/v1alpha1/namespaces/shop/releases/gone/status",
            &["fieldManager=greenlight", "force=true"],
            404,
            status_body(404, "NotFound"),
        )
        .await
    });
    let status = greenlight::api::ReleaseStatus {
        phase: Some(greenlight::api::ReleasePhase::Superseded),
        ..Default::default()
    };
    executor
        .write_status::<greenlight::api::Release>("gone", &status)
        .await
        .expect("the Release was deleted meanwhile");
    let sent = server.await.unwrap();
    assert_eq!(
        sent,
        json!({"apiVersion": "greenlight.dev/v1alpha1", "kind": "Release", "status": {"phase": "Superseded"}})
    );
}

#[tokio::test]
async fn an_invalid_job_template_is_a_permanent_error() {
    let (executor, _handle) = executor();
    let mut request = job_request("shop");
    request.spec = json!({"template": {"spec": {"containers": "not a list"}}});
    let error = executor
        .apply(&Action::CreateJob(request))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidJob { .. }));
    assert!(!error.is_transient());
}

#[tokio::test(start_paused = true)]
async fn a_call_that_never_answers_times_out() {
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        // Take the request and never answer it.
        let (_request, _send) = handle.next_request().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let action = Action::DeleteJob {
        cluster: None,
        namespace: "shop".into(),
        name: "slow".into(),
    };
    let error = executor.apply(&action).await.unwrap_err();
    assert_eq!(error.metric_label(), "timeout");
    server.abort();
}

fn stable_api() -> greenlight::engine::WorkloadRef {
    greenlight::engine::WorkloadRef {
        cluster: None,
        kind: WorkloadKind::Deployment,
        namespace: "shop-prod".into(),
        name: "api".into(),
    }
}

/// A canary step: the live stable Deployment is read, and its canary applied beside it
/// with the stable template, the release's image, its track label and its share of the
/// replicas. The stable Deployment itself is never written.
#[tokio::test]
async fn a_canary_is_the_stable_template_applied_beside_it_with_its_share() {
    let (executor, mut handle) = executor();
    let action = Action::SetCanary {
        stable: stable_api(),
        images: vec![ContainerImage {
            container: "api".into(),
            image: "registry.example.com/shop/api:1.4.2".into(),
        }],
        weight: 25,
    };
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            "/apis/apps/v1/namespaces/shop-prod/deployments/api",
            &[],
            200,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "shop-prod", "labels": {"app": "api"},
                             "resourceVersion": "41", "managedFields": [{"manager": "kubectl"}]},
                "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "api"}},
                         "template": {"metadata": {"labels": {"app": "api"}},
                                      "spec": {"containers": [{"name": "api", "image": "registry.example.com/shop/api:1.4.1"}]}}},
                "status": {"replicas": 6, "readyReplicas": 6}
            }),
        )
        .await;
        expect(
            &mut handle,
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop-prod/deployments/api-canary",
            &["fieldManager=greenlight", "force=true"],
            201,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api-canary"}}),
        )
        .await
    });
    executor.apply(&action).await.unwrap();
    let sent = server.await.unwrap();
    assert_eq!(
        sent,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "api-canary",
                "namespace": "shop-prod",
                "labels": {"app": "api", "greenlight.dev/track": "canary",
                           "greenlight.dev/canary-of": "api", "app.kubernetes.io/managed-by": "greenlight"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "api", "greenlight.dev/track": "canary"}},
                "template": {
                    "metadata": {"labels": {"app": "api", "greenlight.dev/track": "canary"}},
                    "spec": {"containers": [{"name": "api", "image": "registry.example.com/shop/api:1.4.2"}]},
                },
            },
        }),
        "the stable template, nothing of its metadata's bookkeeping, 25% of 6 replicas rounded up"
    );
}

#[tokio::test]
async fn a_canary_is_deleted_by_name_and_one_already_gone_is_fine() {
    for status in [200, 404] {
        let (executor, mut handle) = executor();
        let server = tokio::spawn(async move {
            let answer = if status == 200 {
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})
            } else {
                status_body(404, "NotFound")
            };
            expect(
                &mut handle,
                Method::DELETE,
                "/apis/apps/v1/namespaces/shop-prod/deployments/api-canary",
                &[],
                status,
                answer,
            )
            .await
        });
        executor
            .apply(&Action::DeleteCanary {
                stable: stable_api(),
                route: None,
            })
            .await
            .unwrap();
        server.await.unwrap();
    }
}

fn route_of_shop(canary_weight: u32) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": "shop-prod", "resourceVersion": "41"},
        "spec": {"rules": [{"backendRefs": [
            {"name": "api-stable", "port": 80, "weight": 100 - canary_weight},
            {"name": "api-canary", "port": 80, "weight": canary_weight}]}]}
    })
}

/// A canary goes only once its route sends it nothing, as the API server has the route:
/// a share the caches had not shown yet (the step's own change in flight when the
/// Pipeline was deleted, say) is sent back to the stable Service first; a route already
/// back, or gone, is not written.
#[tokio::test]
async fn a_canary_is_deleted_only_once_its_live_route_sends_it_nothing() {
    let route_path = "/apis/gateway.networking.k8s.io/v1/namespaces/shop-prod/httproutes/shop";
    let canary_path = "/apis/apps/v1/namespaces/shop-prod/deployments/api-canary";
    let deleted = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
    let action = Action::DeleteCanary {
        stable: stable_api(),
        route: Some(CanaryRoute {
            route: RouteRef {
                cluster: None,
                namespace: "shop-prod".into(),
                name: "shop".into(),
            },
            stable_service: "api-stable".into(),
            canary_service: "api-canary".into(),
        }),
    };

    // Still 20%: back to 0 (tested against the version read), then the canary goes.
    let (run, mut handle) = executor();
    let server = tokio::spawn({
        let deleted = deleted.clone();
        async move {
            expect(
                &mut handle,
                Method::GET,
                route_path,
                &[],
                200,
                route_of_shop(20),
            )
            .await;
            let patch = expect(
                &mut handle,
                Method::PATCH,
                route_path,
                &["fieldManager=greenlight"],
                200,
                route_of_shop(0),
            )
            .await;
            expect(&mut handle, Method::DELETE, canary_path, &[], 200, deleted).await;
            patch
        }
    });
    run.apply(&action).await.unwrap();
    let patch = server.await.unwrap();
    assert_eq!(
        patch,
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
            {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "api-stable"},
            {"op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 100},
            {"op": "test", "path": "/spec/rules/0/backendRefs/1/name", "value": "api-canary"},
            {"op": "add", "path": "/spec/rules/0/backendRefs/1/weight", "value": 0}
        ])
    );

    // Already back, or no route: only the deletion.
    for (status, route) in [(200, route_of_shop(0)), (404, status_body(404, "NotFound"))] {
        let (run, mut handle) = executor();
        let server = tokio::spawn({
            let deleted = deleted.clone();
            async move {
                expect(&mut handle, Method::GET, route_path, &[], status, route).await;
                expect(&mut handle, Method::DELETE, canary_path, &[], 200, deleted).await;
            }
        });
        run.apply(&action).await.unwrap();
        server.await.unwrap();
    }

    // The route cannot be changed (refused): the canary stays, to retry.
    let (run, mut handle) = executor();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            route_path,
            &[],
            200,
            route_of_shop(20),
        )
        .await;
        expect(
            &mut handle,
            Method::PATCH,
            route_path,
            &[],
            422,
            status_body(422, "Invalid"),
        )
        .await;
        handle
    });
    let error = run.apply(&action).await.unwrap_err();
    let mut handle = server.await.unwrap();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(100), handle.next_request())
            .await
            .is_err(),
        "the canary is not deleted while the route may send it traffic"
    );
}

#[tokio::test]
async fn a_stable_deployment_without_the_release_container_gets_no_canary() {
    let (executor, mut handle) = executor();
    let action = Action::SetCanary {
        stable: stable_api(),
        images: vec![ContainerImage {
            container: "worker".into(),
            image: "registry.example.com/shop/worker:2".into(),
        }],
        weight: 10,
    };
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            "/apis/apps/v1/namespaces/shop-prod/deployments/api",
            &[],
            200,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "shop-prod"},
                "spec": {"selector": {"matchLabels": {"app": "api"}},
                         "template": {"metadata": {"labels": {"app": "api"}},
                                      "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}
            }),
        )
        .await
    });
    let error = executor.apply(&action).await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(error, Error::InvalidCanary { .. }), "{error:?}");
    assert!(!error.is_transient(), "retrying cannot add a container");
    assert_eq!(
        error.to_string(),
        "cannot set the canary of Deployment shop-prod/api to 10%: Deployment api has no container \"worker\""
    );
}

fn route_weights(weight: u32) -> Action {
    Action::SetRouteWeights {
        route: greenlight::engine::RouteRef {
            cluster: None,
            namespace: "shop-prod".into(),
            name: "shop".into(),
        },
        stable_service: "api-stable".into(),
        canary_service: "api-canary".into(),
        weight,
    }
}

fn live_route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": "shop-prod", "resourceVersion": "77",
                     "managedFields": [{"manager": "argocd-controller"}]},
        "spec": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                 "hostnames": ["shop.example.com"],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "filters": [{"type": "RequestHeaderModifier",
                                         "requestHeaderModifier": {"add": [{"name": "x-env", "value": "prod"}]}}],
                            "backendRefs": [{"name": "api-stable", "port": 8080, "weight": 100},
                                            {"name": "api-canary", "port": 8080, "weight": 0}]}]}
    })
}

/// Canary traffic by route: the live HTTPRoute is read, and a JSON patch sets the two
/// backends' weights (tested against the version read and the backends' names) under
/// Greenlight's field manager; nothing else of the route is sent.
#[tokio::test]
async fn route_weights_are_a_json_patch_of_two_weights_on_the_version_read() {
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        let path = "/apis/gateway.networking.k8s.io/v1/namespaces/shop-prod/httproutes/shop";
        expect(&mut handle, Method::GET, path, &[], 200, live_route()).await;
        expect(
            &mut handle,
            Method::PATCH,
            path,
            &["fieldManager=greenlight"],
            200,
            live_route(),
        )
        .await
    });
    executor.apply(&route_weights(10)).await.unwrap();
    let sent = server.await.unwrap();
    assert_eq!(
        sent,
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "77"},
            {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "api-stable"},
            {"op": "add", "path": "/spec/rules/0/backendRefs/0/weight", "value": 90},
            {"op": "test", "path": "/spec/rules/0/backendRefs/1/name", "value": "api-canary"},
            {"op": "add", "path": "/spec/rules/0/backendRefs/1/weight", "value": 10},
        ])
    );
}

/// A route changed between the read and the patch fails the patch's test (422): a
/// transient error, tried again by the next decision on the new version.
#[tokio::test]
async fn a_route_changed_under_the_patch_is_a_transient_error() {
    let (executor, mut handle) = executor();
    let server = tokio::spawn(async move {
        let path = "/apis/gateway.networking.k8s.io/v1/namespaces/shop-prod/httproutes/shop";
        expect(&mut handle, Method::GET, path, &[], 200, live_route()).await;
        expect(
            &mut handle,
            Method::PATCH,
            path,
            &[],
            422,
            status_body(422, "the test operation failed"),
        )
        .await
    });
    let error = executor.apply(&route_weights(0)).await.unwrap_err();
    server.await.unwrap();
    assert!(matches!(error, Error::Api { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(
        error.to_string().starts_with(
            "the API server refused to send 0% of HTTPRoute shop-prod/shop to Service api-canary"
        ),
        "{error}"
    );
}
