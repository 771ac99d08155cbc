//! Checks one document the way the API server and the controller would: schema, then
//! semantics, then the CRD's CEL rules.

use std::{collections::HashMap, sync::OnceLock};

use kube::core::cel::Validator;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    api::{API_VERSION, Approval, ApprovalSpec, GROUP, Pipeline, Release, ReleaseSpec, crds},
    suggest::closest,
    validation::{
        FieldPath, Problems, ValidPipeline,
        schema::{check_structure, repair},
        validate_approval, validate_pipeline, validate_release,
    },
};

/// What a document turned out to be.
pub enum Checked {
    /// A Pipeline; `valid` is set when its spec passed every check.
    Pipeline { valid: Option<Box<ValidPipeline>> },
    /// A Release.
    Release { spec: Box<ReleaseSpec> },
    /// An Approval.
    Approval { spec: ApprovalSpec },
    /// A Greenlight object too broken to use for cross-checks.
    Broken,
}

/// Identity of a Greenlight object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// `Pipeline`, `Release` or `Approval`.
    pub kind: String,
    /// `metadata.namespace`, if given.
    pub namespace: Option<String>,
    /// `metadata.name` (or `generateName` with a `*`).
    pub name: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

const KINDS: [&str; 3] = ["Pipeline", "Release", "Approval"];

/// Reads `apiVersion`, `kind` and `metadata`; `None` for objects of other API groups.
pub fn identify(value: &Value, problems: &mut Problems) -> Option<ObjectId> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if group != GROUP {
        if api_version.is_empty() && KINDS.contains(&kind) {
            problems.error(
                &FieldPath::new("apiVersion"),
                format!("required field is missing: expected {API_VERSION}"),
            );
        } else {
            return None;
        }
    } else if api_version != API_VERSION {
        problems.error(
            &FieldPath::new("apiVersion"),
            format!("{api_version:?} is not served: expected {API_VERSION}"),
        );
    }
    if !KINDS.contains(&kind) {
        let hint = closest(kind, KINDS)
            .map(|k| format!("did you mean {k:?}?"))
            .unwrap_or_else(|| "expected Pipeline, Release or Approval".into());
        problems.error(
            &FieldPath::new("kind"),
            format!("unknown kind {kind:?} in {GROUP}: {hint}"),
        );
    }
    let metadata = value.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate_name = metadata
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    match (name, generate_name) {
        (Some(name), _) => {
            problems.check(
                &FieldPath::new("metadata").field("name"),
                crate::validation::names::dns_subdomain(name),
            );
        }
        (None, Some(_)) => {}
        (None, None) => problems.error(
            &FieldPath::new("metadata").field("name"),
            "required field is missing",
        ),
    }
    if let Some(namespace) = namespace {
        problems.check(
            &FieldPath::new("metadata").field("namespace"),
            crate::validation::names::dns_label(namespace),
        );
    }
    Some(ObjectId {
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name
            .map(str::to_owned)
            .or_else(|| generate_name.map(|g| format!("{g}*")))
            .unwrap_or_default(),
    })
}

/// The checks the API server applies to one kind: its schema and its CEL rules.
struct KindSchema {
    schema: Value,
}

fn schemas() -> &'static HashMap<&'static str, KindSchema> {
    static SCHEMAS: OnceLock<HashMap<&'static str, KindSchema>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        crds()
            .into_iter()
            .filter_map(|crd| {
                let kind = KINDS.iter().find(|k| **k == crd.spec.names.kind)?;
                Some((*kind, crd))
            })
            .map(|(kind, crd)| {
                let schema = crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref());
                let schema = serde_json::to_value(schema).expect("a derived CRD has a schema");
                (kind, KindSchema { schema })
            })
            .collect()
    })
}

/// Checks a Greenlight object: structure, then semantics, then (if all is well so far) CEL.
pub fn check_object(id: &ObjectId, value: &Value, problems: &mut Problems) -> Checked {
    let Some(kind) = schemas().get(id.kind.as_str()) else {
        return Checked::Broken;
    };
    let mut structural = Problems::new();
    let mut without_metadata = value.clone();
    if let Some(map) = without_metadata.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
    }
    check_structure(
        &kind.schema,
        &without_metadata,
        &FieldPath::root(),
        &mut structural,
    );
    let structure_ok = !structural.has_errors();
    problems.extend(structural);
    if value.get("spec").is_none() {
        return Checked::Broken;
    }
    // Structural problems are reported; the later layers run on a repaired copy so that
    // they can still report everything else.
    let repaired = if structure_ok {
        value.clone()
    } else {
        repair_object(&kind.schema, value)
    };
    let value = &repaired;

    let checked = match id.kind.as_str() {
        "Pipeline" => typed::<Pipeline>(value, problems).map(|p| {
            let (valid, semantic) = validate_pipeline(&p.spec);
            problems.extend(semantic);
            Checked::Pipeline {
                valid: valid.map(Box::new),
            }
        }),
        "Release" => typed::<Release>(value, problems).map(|r| {
            problems.extend(validate_release(&r.spec));
            Checked::Release {
                spec: Box::new(r.spec),
            }
        }),
        "Approval" => typed::<Approval>(value, problems).map(|a| {
            problems.extend(validate_approval(&a.spec));
            Checked::Approval { spec: a.spec }
        }),
        _ => None,
    };
    let Some(checked) = checked else {
        return Checked::Broken;
    };
    if !problems.has_errors() {
        check_cel(&kind.schema, value, problems);
    }
    if problems.has_errors()
        && let Checked::Pipeline { .. } = checked
    {
        return Checked::Pipeline { valid: None };
    }
    checked
}

fn repair_object(schema: &Value, value: &Value) -> Value {
    let mut repaired = repair(schema, value);
    if let (Some(map), Some(original)) = (repaired.as_object_mut(), value.as_object()) {
        for key in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = original.get(key) {
                map.insert(key.to_owned(), v.clone());
            }
        }
    }
    repaired
}

/// Reads the typed object (from the repaired copy, so this fails only on what the schema
/// cannot express).
fn typed<T: DeserializeOwned>(value: &Value, problems: &mut Problems) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(object) => Some(object),
        Err(err) => {
            problems.error(
                &FieldPath::new(&err.path().to_string()),
                err.inner().to_string(),
            );
            None
        }
    }
}

/// Runs the CRD's `x-kubernetes-validations` rules as the API server would on create.
fn check_cel(schema: &Value, value: &Value, problems: &mut Problems) {
    if let Err(errors) = Validator::new().validate(schema, value, None) {
        for error in errors.iter() {
            let path = if error.field_path.is_empty() {
                FieldPath::root()
            } else {
                FieldPath::new(&error.field_path)
            };
            problems.error(&path, format!("{} (rule: {})", error.message, error.rule));
        }
    }
}
