//! The CRDs' CEL rules, evaluated client-side with the Kubernetes CEL library exactly as
//! written in the generated schema: what they allow and what they reject.

use greenlight::api::{Approval, Pipeline, Release};
use kube::{CustomResourceExt, core::cel::Validator};
use serde_json::{Value, json};

fn schema_of(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn example(path: &str, index: usize) -> Value {
    let text =
        std::fs::read_to_string(format!("{}/examples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let doc = serde_yaml::Deserializer::from_str(&text)
        .nth(index)
        .unwrap();
    let yaml: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// The messages of every rule that rejects `object` (on update when `old` is given).
fn rejections(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(schema, object, old) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn a_valid_pipeline_passes_every_rule() {
    let pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    assert_eq!(
        rejections(&schema_of(Pipeline::crd()), &pipeline, None),
        Vec::<String>::new()
    );
}

#[test]
fn an_upstream_must_name_an_environment_of_the_pipeline() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    pipeline["spec"]["environments"][1]["upstream"] = json!(["stagin"]);
    let found = rejections(&schema_of(Pipeline::crd()), &pipeline, None);
    assert_eq!(
        found,
        ["every spec.environments[].upstream entry must name an environment of this pipeline"]
    );
}

#[test]
fn an_environment_cannot_be_its_own_upstream() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    pipeline["spec"]["environments"][1]["upstream"] = json!(["main"]);
    let found = rejections(&schema_of(Pipeline::crd()), &pipeline, None);
    assert_eq!(found, ["an environment cannot be its own upstream"]);
}

#[test]
fn a_freeze_is_either_recurring_or_fixed() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    pipeline["spec"]["environments"][1]["gates"]["freeze"] = json!([
        {"cron": "0 17 * * 5", "duration": "63h", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"},
        {"cron": "0 17 * * 5"},
        {"start": "2026-12-20T00:00:00Z"},
    ]);
    let mut found = rejections(&schema_of(Pipeline::crd()), &pipeline, None);
    found.sort();
    assert_eq!(
        found,
        [
            "a fixed freeze needs both start and end",
            "a freeze is either recurring (cron and duration) or fixed (start and end)",
            "a recurring freeze needs both cron and duration",
        ]
    );
}

#[test]
fn a_metric_needs_a_threshold() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    pipeline["spec"]["environments"][1]["gates"]["metrics"][0]
        .as_object_mut()
        .unwrap()
        .remove("below");
    let found = rejections(&schema_of(Pipeline::crd()), &pipeline, None);
    assert_eq!(
        found,
        ["a metric needs a threshold: set below, above or both"]
    );
}

#[test]
fn a_release_accepts_new_check_results() {
    let old = example("nightly-smoke-promotion/releases.yaml", 2);
    let mut new = old.clone();
    new["spec"]["checks"][2]["state"] = json!("Passed");
    assert_eq!(
        rejections(&schema_of(Release::crd()), &new, Some(&old)),
        Vec::<String>::new()
    );
}

#[test]
fn a_release_never_changes_its_artifacts_version_source_or_requester() {
    let schema = schema_of(Release::crd());
    let old = example("nightly-smoke-promotion/releases.yaml", 2);
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: [(&str, Change); 5] = [
        (
            "spec.artifacts is immutable: create a new Release for new images",
            Box::new(|r| {
                r["spec"]["artifacts"]["auth"] = json!("registry.example.com/sanctum/auth:evil")
            }),
        ),
        (
            "spec.version is immutable",
            Box::new(|r| r["spec"]["version"] = json!("9.9.9")),
        ),
        (
            "spec.source is immutable",
            Box::new(|r| r["spec"]["source"]["ref"] = json!("main")),
        ),
        (
            "spec.pipeline is immutable",
            Box::new(|r| r["spec"]["pipeline"] = json!("other")),
        ),
        (
            "spec.requestedBy is immutable",
            Box::new(|r| {
                r["spec"].as_object_mut().unwrap().remove("requestedBy");
            }),
        ),
    ];
    for (message, change) in cases {
        let mut new = old.clone();
        change(&mut new);
        assert_eq!(rejections(&schema, &new, Some(&old)), [message]);
    }
}

#[test]
fn an_approval_cannot_be_edited() {
    let schema = schema_of(Approval::crd());
    let old = example("github-flow-manual-approval/approvals.yaml", 0);
    assert_eq!(rejections(&schema, &old, Some(&old)), Vec::<String>::new());
    let mut new = old.clone();
    new["spec"]["decision"] = json!("Reject");
    assert_eq!(
        rejections(&schema, &new, Some(&old)),
        ["an Approval cannot be changed; delete it and create a new one"]
    );
}

#[test]
fn a_metric_range_must_not_be_empty() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    pipeline["spec"]["environments"][1]["gates"]["metrics"][0]["above"] = json!(2.0);
    let found = rejections(&schema_of(Pipeline::crd()), &pipeline, None);
    assert_eq!(
        found,
        ["above must be less than below, or no value can ever pass"]
    );
}

#[test]
fn an_approval_rule_must_be_satisfiable_by_the_users_it_lists() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    let rule = |rule: Value| json!({"checks": ["build"], "approvals": [rule]});
    pipeline["spec"]["environments"][1]["gates"] =
        rule(json!({"name": "leads", "count": 3, "users": ["bob", "carol"]}));
    assert_eq!(
        rejections(&schema_of(Pipeline::crd()), &pipeline, None),
        [
            "count is more than the users listed, and no groups are given: no release could ever be approved (lower count, list more users, or add groups)"
        ]
    );
    for satisfiable in [
        json!({"name": "leads", "count": 2, "users": ["bob", "carol"]}),
        json!({"name": "leads", "count": 3, "users": ["bob", "carol"], "groups": ["leads"]}),
        json!({"name": "leads", "count": 3, "groups": ["leads"]}),
        json!({"name": "leads", "count": 3}),
    ] {
        pipeline["spec"]["environments"][1]["gates"] = rule(satisfiable.clone());
        assert_eq!(
            rejections(&schema_of(Pipeline::crd()), &pipeline, None),
            Vec::<String>::new(),
            "{satisfiable}"
        );
    }
}

#[test]
fn an_environment_targets_at_least_one_workload_in_either_list() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    let schema = schema_of(Pipeline::crd());
    let target = |value: Value| {
        json!({"namespace": "shop-dev"})
            .as_object()
            .cloned()
            .map(|mut t| {
                t.extend(value.as_object().cloned().unwrap_or_default());
                Value::Object(t)
            })
    };
    pipeline["spec"]["environments"][0]["target"] = target(json!({})).unwrap();
    assert_eq!(
        rejections(&schema, &pipeline, None),
        [
            "an environment needs at least one target workload: set target.deployments or target.workloads (with target.git, unless its images are in kustomize or helm files)"
        ]
    );
    pipeline["spec"]["environments"][0]["target"] =
        target(json!({"deployments": [], "workloads": []})).unwrap();
    assert_eq!(
        rejections(&schema, &pipeline, None).len(),
        1,
        "empty lists count as none"
    );
    for enough in [
        json!({"deployments": [{"name": "api"}]}),
        json!({"workloads": [{"kind": "StatefulSet", "name": "db"}]}),
        json!({"deployments": [{"name": "api"}], "workloads": [{"kind": "CronJob", "name": "nightly"}]}),
        // GitOps mode with the images in kustomize or helm files: Argo CD says when.
        json!({"git": {"repository": "https://git.example.com/envs.git", "branch": "main",
            "kustomize": {"images": [{"artifact": "api", "name": "api"}]},
            "argoCDApplication": {"name": "shop-dev", "namespace": "argocd"}}}),
    ] {
        pipeline["spec"]["environments"][0]["target"] = target(enough.clone()).unwrap();
        assert_eq!(
            rejections(&schema, &pipeline, None),
            Vec::<String>::new(),
            "{enough}"
        );
    }
}

#[test]
fn a_git_target_has_one_layout_one_applier_and_somewhere_for_each_image() {
    let mut pipeline = example("nightly-smoke-promotion/pipeline.yaml", 0);
    let schema = schema_of(Pipeline::crd());
    let with_git =
        |git: Value| json!({"namespace": "shop-dev", "deployments": [{"name": "api"}], "git": git});
    let base = json!({"repository": "https://git.example.com/envs.git", "branch": "main"});
    let git = |extra: Value| {
        let mut git = base.clone();
        git.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        git
    };
    for (git, expected) in [
        (
            git(json!({})),
            vec![
                "target.git needs exactly one of kustomize, helm and yaml: how the images are written",
            ],
        ),
        (
            git(json!({"yaml": {}, "helm": {"images": [{"artifact": "api", "tag": "image.tag"}]}})),
            vec![
                "target.git needs exactly one of kustomize, helm and yaml: how the images are written",
            ],
        ),
        (
            git(
                json!({"yaml": {}, "argoCDApplication": {"name": "a", "namespace": "argocd"},
                "fluxKustomization": {"name": "a", "namespace": "flux-system"}}),
            ),
            vec!["target.git takes argoCDApplication or fluxKustomization, not both"],
        ),
        (
            git(json!({"helm": {"images": [{"artifact": "api"}]}})),
            vec!["a helm image needs at least one of reference, repository, tag and digest"],
        ),
        (
            git(json!({"helm": {"images": [{"artifact": "api", "tag": "image.tag"}]}})),
            vec![],
        ),
        (git(json!({"yaml": {}})), vec![]),
    ] {
        pipeline["spec"]["environments"][0]["target"] = with_git(git.clone());
        assert_eq!(rejections(&schema, &pipeline, None), expected, "{git}");
    }
    // Plain manifests name the workloads whose images they hold.
    pipeline["spec"]["environments"][0]["target"] =
        json!({"namespace": "shop-dev", "git": git(json!({"yaml": {}}))});
    assert_eq!(rejections(&schema, &pipeline, None).len(), 1);
}
