//! The generated CRDs: no drift from the code, and acceptable to a real API server
//! (structural schema, list-map keys, bounded CEL rules that compile, size limits).

use greenlight::api::{crds, crds_yaml};
use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::Value;

const CRD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/greenlight.dev.yaml");

fn schemas() -> Vec<(String, Value)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap();
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap();
            (name, serde_json::to_value(schema).unwrap())
        })
        .collect()
}

/// Calls `visit(path, node)` on every schema node below `schema`.
fn walk(path: &str, schema: &Value, visit: &mut dyn FnMut(&str, &Value)) {
    visit(path, schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(&format!("{path}.{name}"), child, visit);
        }
    }
    if let Some(items) = schema.get("items") {
        walk(&format!("{path}[]"), items, visit);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        walk(&format!("{path}{{}}"), additional, visit);
    }
}

#[test]
fn crds_directory_matches_the_code() {
    let on_disk = std::fs::read_to_string(CRD_FILE).expect("crds/greenlight.dev.yaml exists");
    assert!(
        on_disk == crds_yaml(),
        "crds/greenlight.dev.yaml is stale: run `cargo run -- crds > crds/greenlight.dev.yaml` and commit it"
    );
}

#[test]
fn every_crd_fits_the_client_side_apply_annotation() {
    // kubectl apply stores the whole object in an annotation limited to 256 KiB.
    for crd in crds() {
        let size = serde_json::to_vec(&crd).unwrap().len();
        assert!(
            size < 128 * 1024,
            "{} is {size} bytes; keep it well under 256 KiB",
            crd.metadata.name.unwrap()
        );
    }
}

#[test]
fn crds_serve_one_stored_version_with_status_subresource_and_short_names() {
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap();
        assert_eq!(crd.spec.group, "greenlight.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions.len(), 1, "{name}");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage, "{name}");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has no status subresource"
        );
        assert!(
            !crd.spec
                .names
                .short_names
                .clone()
                .unwrap_or_default()
                .is_empty(),
            "{name} has no short name"
        );
        let columns = version
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert!(columns.len() >= 3, "{name} needs useful printer columns");
        assert!(
            columns.iter().any(|c| c.name == "Age"),
            "{name} has no Age column"
        );
    }
}

#[test]
fn schemas_are_structural() {
    for (crd, schema) in schemas() {
        walk(&crd, &schema, &mut |path, node| {
            let preserve = node.get("x-kubernetes-preserve-unknown-fields").is_some();
            let int_or_string = node.get("x-kubernetes-int-or-string").is_some();
            assert!(
                node.get("type").is_some() || preserve || int_or_string,
                "{path} has no type"
            );
            for forbidden in [
                "$ref",
                "definitions",
                "$defs",
                "oneOf",
                "anyOf",
                "allOf",
                "not",
            ] {
                assert!(
                    node.get(forbidden).is_none(),
                    "{path} uses {forbidden}, which is not structural here"
                );
            }
            assert!(
                !(node.get("properties").is_some() && node.get("additionalProperties").is_some()),
                "{path} has both properties and additionalProperties"
            );
        });
    }
}

#[test]
fn list_map_keys_are_required_in_their_items() {
    for (crd, schema) in schemas() {
        walk(&crd, &schema, &mut |path, node| {
            let Some(keys) = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
            else {
                return;
            };
            let required = node["items"]["required"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for key in keys {
                assert!(
                    required.contains(key),
                    "{path}: list-map key {key} is not required in the items"
                );
            }
        });
    }
}

#[test]
fn every_cel_rule_compiles_in_crd_scope() {
    let mut rules = 0;
    for (crd, schema) in schemas() {
        let compiled = compile_schema(&schema);
        assert!(!compiled.has_errors(), "{crd}: a CEL rule does not compile");
        walk(&crd, &schema, &mut |path, node| {
            for rule in node
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                rules += 1;
                let text = rule["rule"].as_str().unwrap();
                let node_compiled = compile_schema(node);
                assert!(
                    !node_compiled.has_errors(),
                    "{path}: {text} does not compile"
                );
                // kube-cel's scope analysis does not know comprehension variables (`e` in
                // `self.all(e, ...)`), so only its cost estimate is asserted here.
                for warning in analyze_rule(text, &node_compiled, ScopeContext::CrdValidation) {
                    assert!(
                        !matches!(warning.kind, WarningKind::CostExceeded),
                        "{path}: {text}: {}",
                        warning.message
                    );
                }
                assert!(
                    rule.get("message").is_some(),
                    "{path}: {text} needs a message for users"
                );
            }
        });
    }
    assert!(
        rules >= 10,
        "expected the CRDs to carry CEL rules, found {rules}"
    );
}

#[test]
fn everything_a_cel_rule_can_reach_is_bounded() {
    // The API server estimates each rule's cost from maxItems, maxLength and
    // maxProperties, and rejects the CRD if the worst case exceeds its budget.
    for (crd, schema) in schemas() {
        walk(&crd, &schema, &mut |rule_path, node| {
            if node.get("x-kubernetes-validations").is_none() {
                return;
            }
            walk(rule_path, node, &mut |path, child| {
                if child.get("x-kubernetes-preserve-unknown-fields").is_some() {
                    return;
                }
                match child.get("type").and_then(Value::as_str) {
                    Some("array") => assert!(
                        child.get("maxItems").is_some(),
                        "{path} (reached by a rule at {rule_path}) has no maxItems"
                    ),
                    Some("string") => assert!(
                        child.get("maxLength").is_some()
                            || child.get("enum").is_some()
                            || child.get("format").is_some(),
                        "{path} (reached by a rule at {rule_path}) has no maxLength"
                    ),
                    Some("object") if child.get("additionalProperties").is_some() => {
                        assert!(
                            child.get("maxProperties").is_some(),
                            "{path} (reached by a rule at {rule_path}) has no maxProperties"
                        )
                    }
                    _ => {}
                }
            });
        });
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    for (crd, schema) in schemas() {
        walk(&crd, &schema, &mut |path, node| {
            if path.ends_with("[]") || path.ends_with("{}") {
                return;
            }
            assert!(
                node.get("description").is_some(),
                "{path} has no description"
            );
        });
    }
}

#[test]
fn the_duration_pattern_the_api_server_checks_agrees_with_the_parser() {
    let pattern = regex::Regex::new(greenlight::api::DURATION).unwrap();
    let samples = [
        "0",
        "15m",
        "1h30m",
        "1.5h",
        "250ms",
        "10us",
        "10µs",
        "5ns",
        "63h",
        "90s",
        "1h0m5s",
        "15 minutes",
        "15",
        "5d",
        "-5m",
        ".5h",
        "5.h",
        "1.2.3s",
        "",
        "m",
        "1hh",
        "h1",
        "0s",
        "00m",
    ];
    for sample in samples {
        assert_eq!(
            pattern.is_match(sample),
            greenlight::validation::parse_duration(sample).is_ok(),
            "the schema pattern and parse_duration disagree on {sample:?}"
        );
    }
}

#[test]
fn environment_names_are_unique_by_list_map_key() {
    // The API server rejects duplicate keys of a list-map itself; no CEL rule is needed.
    let (_, schema) = &schemas()[0];
    let environments = &schema["properties"]["spec"]["properties"]["environments"];
    assert_eq!(environments["x-kubernetes-list-type"], "map");
    assert_eq!(
        environments["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
}

/// `kubectl apply` warns `unrecognized format "uint32"` for any format the API server
/// does not know, on every apply.
#[test]
fn every_format_is_one_the_api_server_knows() {
    for (crd, schema) in schemas() {
        walk(&crd, &schema, &mut |path, node| {
            if let Some(format) = node.get("format").and_then(Value::as_str) {
                assert!(
                    greenlight::api::KNOWN_FORMATS.contains(&format),
                    "{path}: format {format:?} is unknown to the API server"
                );
            }
            if node.get("type").and_then(Value::as_str) == Some("integer") {
                assert!(
                    matches!(
                        node.get("format").and_then(Value::as_str),
                        None | Some("int32" | "int64")
                    ),
                    "{path}: an integer is int32, int64 or has no format"
                );
            }
        });
    }
    // An unsigned field keeps its range as bounds: a promotion's step is a u32, and
    // historyLimit keeps its own, narrower range.
    let (_, pipeline) = &schemas()[0];
    let step = &pipeline["properties"]["status"]["properties"]["environments"]["items"]["properties"]
        ["promotion"]["properties"]["step"];
    assert_eq!(step["minimum"], 0.0);
    assert_eq!(step["maximum"], f64::from(u32::MAX));
    let history = &pipeline["properties"]["spec"]["properties"]["historyLimit"];
    assert_eq!(
        (&history["minimum"], &history["maximum"]),
        (&1.0.into(), &100.0.into())
    );
}

/// `kubectl explain` prints descriptions as they are: the line breaks of the source's
/// doc-comment wrapping would cut sentences in half.
#[test]
fn descriptions_break_lines_only_between_paragraphs_and_list_items() {
    for (crd, schema) in schemas() {
        walk(&crd, &schema, &mut |path, node| {
            let Some(description) = node.get("description").and_then(Value::as_str) else {
                return;
            };
            for paragraph in description.split("\n\n") {
                for line in paragraph.lines().skip(1) {
                    assert!(
                        line.starts_with("- ") || line.starts_with("* "),
                        "{path}: a line break in mid-sentence before {line:?} in {description:?}"
                    );
                }
            }
        });
    }
    let (_, pipeline) = &schemas()[0];
    let cron = &pipeline["properties"]["spec"]["properties"]["environments"]["items"]["properties"]
        ["gates"]["properties"]["schedule"]["items"]["properties"]["cron"];
    assert_eq!(
        cron["description"],
        "When the window opens: a five-field cron expression (minute hour day-of-month month day-of-week), such as `0 2 * * *`."
    );
}
