//! Offline structural validation against an OpenAPI v3 schema: what the API server checks
//! before CEL, with messages for people (unknown fields get a "did you mean").
//!
//! Patterns and formats are left to the semantic checks, which explain them better.

use serde_json::Value;

use super::problems::{FieldPath, Problems};
use crate::suggest::closest;

/// Checks `value` against `schema`, recording every mismatch under `path`.
pub fn check_structure(schema: &Value, value: &Value, path: &FieldPath, problems: &mut Problems) {
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            problems.error(
                path,
                format!("expected {}, found nothing (null)", describe_type(schema)),
            );
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            problems.error(
                path,
                format!(
                    "expected an integer or a string, found {}",
                    describe_value(value)
                ),
            );
        }
        return;
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    let type_matches = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_matches {
        problems.error(
            path,
            format!(
                "expected {}, found {}",
                describe_type(schema),
                describe_value(value)
            ),
        );
        return;
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, problems),
        Value::Array(items) => check_array(schema, items, path, problems),
        Value::String(text) => check_string(schema, text, path, problems),
        Value::Number(number) => {
            check_number(schema, number.as_f64().unwrap_or_default(), path, problems)
        }
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    for (key, child) in map {
        let child_path = match additional {
            Some(_) if properties.is_none() => path.key(key),
            _ => path.field(key),
        };
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check_structure(child_schema, child, &child_path, problems);
        } else if let Some(child_schema) = additional {
            check_structure(child_schema, child, &child_path, problems);
        } else if !preserve {
            let known: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            problems.error(&child_path, unknown_field_message(key, &known));
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = required.as_str()
            && !map.contains_key(name)
        {
            problems.error(&path.field(name), "required field is missing");
        }
    }
    check_bounds(
        schema,
        map.len(),
        "minProperties",
        "maxProperties",
        "entries",
        path,
        problems,
    );
}

/// Returns a copy of `value` that fits `schema`: unknown fields dropped, values of the wrong
/// type and missing required fields replaced by placeholders. The typed and semantic checks
/// can then run on the rest of the object, so one structural mistake hides nothing else.
pub fn repair(schema: &Value, value: &Value) -> Value {
    if value.is_null() || flag(schema, "x-kubernetes-int-or-string") {
        return value.clone();
    }
    let Some(expected) = schema.get("type").and_then(Value::as_str) else {
        return value.clone();
    };
    match (expected, value) {
        ("object", Value::Object(map)) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let mut repaired = serde_json::Map::new();
            for (key, child) in map {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    repaired.insert(key.clone(), repair(child_schema, child));
                } else if preserve {
                    repaired.insert(key.clone(), child.clone());
                }
            }
            fill_required(schema, &mut repaired);
            Value::Object(repaired)
        }
        ("array", Value::Array(items)) => {
            let item_schema = schema.get("items");
            Value::Array(
                items
                    .iter()
                    .map(|item| item_schema.map_or_else(|| item.clone(), |s| repair(s, item)))
                    .collect(),
            )
        }
        ("string", Value::String(text)) => match schema.get("enum").and_then(Value::as_array) {
            Some(allowed) if !allowed.contains(value) => placeholder(schema),
            _ => Value::String(text.clone()),
        },
        ("integer", v) if v.is_i64() || v.is_u64() => v.clone(),
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => value.clone(),
        _ => placeholder(schema),
    }
}

fn fill_required(schema: &Value, map: &mut serde_json::Map<String, Value>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(props)) = (required.as_str(), properties)
            && !map.contains_key(name)
            && let Some(child_schema) = props.get(name)
        {
            map.insert(name.to_owned(), placeholder(child_schema));
        }
    }
}

/// The simplest value of a schema's type, standing in for a missing or broken one.
fn placeholder(schema: &Value) -> Value {
    if flag(schema, "nullable") {
        return Value::Null;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut map = serde_json::Map::new();
            fill_required(schema, &mut map);
            Value::Object(map)
        }
        Some("array") => Value::Array(vec![]),
        Some("string") => schema
            .get("enum")
            .and_then(|e| e.get(0))
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
        Some("integer" | "number") => Value::from(0),
        Some("boolean") => Value::Bool(false),
        _ => Value::Null,
    }
}

fn unknown_field_message(key: &str, known: &[&str]) -> String {
    match closest(key, known.iter().copied()) {
        Some(best) => format!("unknown field {key:?}: did you mean {best:?}?"),
        None if known.is_empty() => format!("unknown field {key:?}: this object takes no fields"),
        None if known.len() <= 12 => format!(
            "unknown field {key:?}: expected one of {}",
            known.join(", ")
        ),
        None => format!("unknown field {key:?}"),
    }
}

fn check_array(schema: &Value, items: &[Value], path: &FieldPath, problems: &mut Problems) {
    check_bounds(
        schema,
        items.len(),
        "minItems",
        "maxItems",
        "items",
        path,
        problems,
    );
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check_structure(item_schema, item, &path.index(i), problems);
        }
    }
}

fn check_string(schema: &Value, text: &str, path: &FieldPath, problems: &mut Problems) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        if !names.contains(&text) {
            let hint = closest(text, names.iter().copied())
                .map(|b| format!(" (did you mean {b:?}?)"))
                .unwrap_or_default();
            problems.error(
                path,
                format!("{text:?} is not one of {}{hint}", names.join(", ")),
            );
        }
        return;
    }
    check_bounds(
        schema,
        text.chars().count(),
        "minLength",
        "maxLength",
        "characters",
        path,
        problems,
    );
}

fn check_number(schema: &Value, number: f64, path: &FieldPath, problems: &mut Problems) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && number < min
    {
        problems.error(path, format!("{number} is too small: the minimum is {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && number > max
    {
        problems.error(path, format!("{number} is too large: the maximum is {max}"));
    }
}

fn check_bounds(
    schema: &Value,
    len: usize,
    min_key: &str,
    max_key: &str,
    what: &str,
    path: &FieldPath,
    problems: &mut Problems,
) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64).map(|b| b as usize);
    if let Some(min) = bound(min_key)
        && len < min
    {
        let message = match (len, min) {
            (0, 1) => "must not be empty".to_owned(),
            _ => format!("has {len} {what}, at least {min} needed"),
        };
        problems.error(path, message);
    }
    if let Some(max) = bound(max_key)
        && len > max
    {
        problems.error(path, format!("has {len} {what}, at most {max} allowed"));
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn describe_type(schema: &Value) -> &'static str {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => "an object",
        Some("array") => "a list",
        Some("string") => "a string",
        Some("integer") => "an integer",
        Some("number") => "a number",
        Some("boolean") => "true or false",
        _ => "a value",
    }
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems_for(schema: Value, value: Value) -> Vec<String> {
        let mut problems = Problems::new();
        check_structure(&schema, &value, &FieldPath::new("spec"), &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    fn object_schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 5},
                "upstream": {"type": "array", "items": {"type": "string"}, "nullable": true},
                "count": {"type": "integer", "minimum": 1},
                "decision": {"type": "string", "enum": ["Approve", "Reject"]},
            }
        })
    }

    #[test]
    fn a_typo_in_a_field_name_suggests_the_real_field() {
        let found = problems_for(object_schema(), json!({"name": "dev", "upsteam": ["x"]}));
        assert_eq!(
            found,
            ["error: spec.upsteam: unknown field \"upsteam\": did you mean \"upstream\"?"]
        );
    }

    #[test]
    fn a_wrong_type_names_both_types() {
        let found = problems_for(
            object_schema(),
            json!({"name": "dev", "upstream": "staging"}),
        );
        assert_eq!(
            found,
            ["error: spec.upstream: expected a list, found the string \"staging\""]
        );
    }

    #[test]
    fn missing_required_fields_bounds_and_enums_are_reported_together() {
        let found = problems_for(object_schema(), json!({"count": 0, "decision": "Approved"}));
        assert_eq!(
            found,
            [
                "error: spec.count: 0 is too small: the minimum is 1",
                "error: spec.decision: \"Approved\" is not one of Approve, Reject (did you mean \"Approve\"?)",
                "error: spec.name: required field is missing",
            ]
        );
    }

    #[test]
    fn preserved_objects_accept_any_field() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        assert!(problems_for(schema, json!({"anything": {"goes": 1}})).is_empty());
    }

    #[test]
    fn map_entries_are_checked_against_additional_properties() {
        let schema =
            json!({"type": "object", "additionalProperties": {"type": "string", "minLength": 1}});
        let found = problems_for(schema, json!({"api": ""}));
        assert_eq!(found, ["error: spec[\"api\"]: must not be empty"]);
    }
    #[test]
    fn repair_drops_unknown_fields_and_replaces_broken_values() {
        let repaired = repair(
            &object_schema(),
            &json!({"upsteam": ["x"], "upstream": "staging", "count": "two", "decision": "Maybe"}),
        );
        assert_eq!(
            repaired,
            json!({"name": "", "upstream": null, "count": 0, "decision": "Approve"})
        );
    }
}
