//! `docs/gitops.md`: every YAML snippet parses, the GitOps-mode Pipeline is valid, and the
//! direct-mode Argo CD and Flux ignore rules name exactly what Greenlight writes: its
//! field manager, and each workload kind's container images at the path its driver
//! applies them (so a new kind or a moved path fails here).

use std::collections::BTreeSet;

use greenlight::{
    api::WorkloadKind,
    controller::{actions::FIELD_MANAGER, workloads::driver},
    engine::{ContainerImage, WorkloadRef},
};
use serde_json::Value;

fn snippets() -> Vec<Value> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gitops.md"))
        .expect("docs/gitops.md exists");
    doc.split("```yaml\n")
        .skip(1)
        .map(|rest| {
            let yaml = rest.split("```").next().unwrap();
            serde_yaml::from_str(yaml)
                .unwrap_or_else(|e| panic!("a snippet does not parse: {e}\n{yaml}"))
        })
        .collect()
}

fn of_kind<'a>(snippets: &'a [Value], api_version: &str, kind: &str) -> Vec<&'a Value> {
    snippets
        .iter()
        .filter(|s| s["apiVersion"] == api_version && s["kind"] == kind)
        .collect()
}

/// The path, from the object's root, of the `containers` list whose images the driver of
/// `kind` sets: read off its own server-side-apply body.
fn containers_path(kind: WorkloadKind) -> Vec<String> {
    let workload = WorkloadRef {
        cluster: None,
        kind,
        namespace: "ns".into(),
        name: "w".into(),
    };
    let images = [ContainerImage {
        container: "c".into(),
        image: "i".into(),
    }];
    let body = driver(kind).apply_body(&workload, &images);
    fn find(value: &Value, path: &mut Vec<String>) -> bool {
        let Some(map) = value.as_object() else {
            return false;
        };
        if map.contains_key("containers") {
            path.push("containers".into());
            return true;
        }
        for (key, child) in map {
            if key == "metadata" {
                continue;
            }
            path.push(key.clone());
            if find(child, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    assert!(find(&body, &mut path), "{body}");
    path
}

fn group_of(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::CronJob => "batch",
        _ => "apps",
    }
}

#[test]
fn argo_cd_ignores_greenlights_fields_and_respects_that_when_it_syncs() {
    let snippets = snippets();
    let applications = of_kind(&snippets, "argoproj.io/v1alpha1", "Application");
    assert!(!applications.is_empty());
    let workloads = applications[0];
    let mut covered = BTreeSet::new();
    for rule in workloads["spec"]["ignoreDifferences"].as_array().unwrap() {
        let kind = rule["kind"].as_str().unwrap();
        let kind = *WorkloadKind::ALL
            .iter()
            .find(|k| k.as_str() == kind)
            .unwrap_or_else(|| panic!("{kind} is not a kind Greenlight sets images on"));
        assert_eq!(rule["group"], group_of(kind), "{rule}");
        assert_eq!(
            rule["managedFieldsManagers"],
            serde_json::json!([FIELD_MANAGER])
        );
        let jq = format!(".{}[].image", containers_path(kind).join("."));
        assert_eq!(rule["jqPathExpressions"], serde_json::json!([jq]), "{kind}");
        covered.insert(kind);
    }
    assert_eq!(
        covered,
        WorkloadKind::ALL.iter().copied().collect(),
        "every kind Greenlight drives"
    );
    for application in &applications {
        let options = &application["spec"]["syncPolicy"]["syncOptions"];
        assert!(
            options
                .as_array()
                .is_some_and(|o| o.iter().any(|v| v == "RespectIgnoreDifferences=true")),
            "without RespectIgnoreDifferences a sync applies the ignored fields: {application}"
        );
    }
    let routes = applications[1]["spec"]["ignoreDifferences"][0].clone();
    assert_eq!(
        (
            routes["group"].as_str(),
            routes["kind"].as_str(),
            routes["jqPathExpressions"][0].as_str()
        ),
        (
            Some(greenlight::controller::routes::PERMISSION.group),
            Some("HTTPRoute"),
            Some(".spec.rules[].backendRefs[].weight")
        ),
        "the weights the route patch sets"
    );
}

#[test]
fn flux_leaves_the_images_greenlight_sets_alone() {
    let snippets = snippets();
    let kustomizations = of_kind(&snippets, "kustomize.toolkit.fluxcd.io/v1", "Kustomization");
    let rules = kustomizations[0]["spec"]["driftIgnoreRules"]
        .as_array()
        .unwrap();
    let mut covered = BTreeSet::new();
    for rule in rules {
        let kind = rule["target"]["kind"].as_str().unwrap();
        let kind = *WorkloadKind::ALL
            .iter()
            .find(|k| k.as_str() == kind)
            .unwrap_or_else(|| panic!("{kind} is not a kind Greenlight sets images on"));
        let pointer = format!("/{}/0/image", containers_path(kind).join("/"));
        assert_eq!(rule["paths"], serde_json::json!([pointer]), "{kind}");
        covered.insert(kind);
    }
    assert_eq!(covered, WorkloadKind::ALL.iter().copied().collect());
    let releases = of_kind(&snippets, "helm.toolkit.fluxcd.io/v2", "HelmRelease");
    let drift = &releases[0]["spec"]["driftDetection"];
    assert_eq!(drift["mode"], "enabled");
    assert_eq!(
        drift["ignore"][0]["paths"][0].as_str(),
        Some(
            format!(
                "/{}/0/image",
                containers_path(WorkloadKind::Deployment).join("/")
            )
            .as_str()
        )
    );
}

#[test]
fn the_gitops_mode_pipeline_is_valid_and_uses_every_applier() {
    let snippets = snippets();
    let pipelines = of_kind(&snippets, "greenlight.dev/v1alpha1", "Pipeline");
    assert_eq!(pipelines.len(), 1, "the walkthrough's Pipeline");
    let pipeline: greenlight::api::Pipeline =
        serde_json::from_value(pipelines[0].clone()).expect("a Pipeline");
    let (valid, problems) = greenlight::validation::validate_pipeline(&pipeline.spec);
    let valid = valid.unwrap_or_else(|| panic!("{problems:?}"));
    let sync: Vec<_> = valid
        .environments
        .iter()
        .filter_map(|e| e.git.as_ref().map(|g| g.sync.clone()))
        .collect();
    assert!(
        sync.iter()
            .any(|s| matches!(s, greenlight::validation::SyncSource::ArgoCd { .. }))
            && sync
                .iter()
                .any(|s| matches!(s, greenlight::validation::SyncSource::Flux { .. })),
        "{sync:?}"
    );
}
