//! Job templates are stored as given (to keep the CRDs small) and checked here against
//! the real `batch/v1` JobSpec schema.

use std::sync::OnceLock;

use k8s_openapi::api::batch::v1::JobSpec;
use serde_json::{Map, Value};

use super::{
    problems::{FieldPath, Problems},
    schema::check_structure,
};

fn job_spec_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = schemars::generate::SchemaSettings::openapi3()
            .with(|s| {
                s.inline_subschemas = true;
                s.meta_schema = None;
            })
            .into_generator();
        serde_json::to_value(generator.into_root_schema_for::<JobSpec>())
            .expect("the JobSpec schema serializes")
    })
}

/// Checks a Job step's `template` as a `batch/v1` JobSpec: field names and types, and the
/// rules Kubernetes applies to Jobs that would otherwise only fail when the Job is created.
pub fn validate_job_template(template: &Map<String, Value>, path: &FieldPath) -> Problems {
    let mut problems = Problems::new();
    let value = Value::Object(template.clone());
    check_structure(job_spec_schema(), &value, path, &mut problems);
    if problems.has_errors() {
        return problems;
    }
    let pod_spec_path = path.field("template").field("spec");
    let pod_spec = value.pointer("/template/spec");
    let containers = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        problems.error(
            &pod_spec_path.field("containers"),
            "a Job needs at least one container",
        );
    }
    match pod_spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
    {
        Some("Never" | "OnFailure") => {}
        Some(other) => problems.error(
            &pod_spec_path.field("restartPolicy"),
            format!("{other:?} is not allowed for a Job: use Never or OnFailure"),
        ),
        None => problems.error(
            &pod_spec_path.field("restartPolicy"),
            "required for a Job: set Never or OnFailure",
        ),
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(template: Value) -> Vec<String> {
        let Value::Object(map) = template else {
            panic!("test templates are objects")
        };
        validate_job_template(&map, &FieldPath::new("spec").field("template"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_plain_job_passes() {
        let found = check(json!({
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "shop/migrate:1", "args": ["up"]}]}}
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_typo_inside_the_pod_spec_is_found_with_its_path() {
        let found = check(json!({
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "x", "comand": ["run"]}]}}
        }));
        assert_eq!(
            found,
            [
                "error: spec.template.template.spec.containers[0].comand: unknown field \"comand\": did you mean \"command\"?"
            ]
        );
    }

    #[test]
    fn a_job_without_restart_policy_is_rejected_before_kubernetes_would() {
        let found =
            check(json!({"template": {"spec": {"containers": [{"name": "t", "image": "x"}]}}}));
        assert_eq!(
            found,
            [
                "error: spec.template.template.spec.restartPolicy: required for a Job: set Never or OnFailure"
            ]
        );
    }
}
