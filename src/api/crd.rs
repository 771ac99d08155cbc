//! The CustomResourceDefinitions, generated from the types above, then finished for the
//! API server: integer formats it does not know are dropped (their range stays as
//! `minimum`/`maximum`), and doc comments wrapped in the source read as flowing text in
//! `kubectl explain`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use super::{Approval, Pipeline, Release};

/// The schema formats a Kubernetes API server recognises (apiextensions-apiserver's
/// format registry, plus the numeric formats of OpenAPI). Anything else makes
/// `kubectl apply` print `Warning: unrecognized format` on every apply.
pub const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "password",
    "date",
    "date-time",
    "datetime",
    "duration",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "bsonobjectid",
];

/// Every CRD Greenlight serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Pipeline::crd(), Release::crd(), Approval::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                finish_schema(schema);
            }
        }
    }
    crds
}

/// The CRDs as one multi-document YAML stream, as `greenlight crds` prints it.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Rewrites one schema node and everything below it.
fn finish_schema(schema: &mut JSONSchemaProps) {
    if let Some(format) = &schema.format
        && !KNOWN_FORMATS.contains(&format.as_str())
    {
        // schemars names Rust's unsigned types (`uint16`, `uint32`); their range is
        // already in `minimum`, and the upper bound is added here.
        let maximum = match format.as_str() {
            "uint8" => Some(f64::from(u8::MAX)),
            "uint16" => Some(f64::from(u16::MAX)),
            "uint32" => Some(f64::from(u32::MAX)),
            _ => None,
        };
        if schema.maximum.is_none() {
            schema.maximum = maximum;
        }
        schema.format = None;
    }
    if let Some(description) = &schema.description {
        schema.description = Some(flowing_text(description));
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        finish_schema(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => finish_schema(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(finish_schema),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = &mut schema.additional_properties {
        finish_schema(additional);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        list.iter_mut().flatten().for_each(finish_schema);
    }
}

/// A doc comment as `kubectl explain` should print it: the line breaks of source
/// wrapping joined into spaces, paragraphs (blank lines) and list items kept apart.
pub fn flowing_text(doc: &str) -> String {
    doc.split("\n\n")
        .map(|paragraph| {
            let mut joined = String::with_capacity(paragraph.len());
            for line in paragraph.lines().map(str::trim) {
                if !joined.is_empty() {
                    joined.push(if starts_list_item(line) { '\n' } else { ' ' });
                }
                joined.push_str(line);
            }
            joined
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `- item`, `* item` or `1. item`: a line that starts a list item keeps its own line.
fn starts_list_item(line: &str) -> bool {
    let numbered = line
        .split_once(". ")
        .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    line.starts_with("- ") || line.starts_with("* ") || numbered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_join_and_paragraphs_and_lists_stay() {
        assert_eq!(
            flowing_text("When the window opens: (minute hour day-of-month\nmonth day-of-week)."),
            "When the window opens: (minute hour day-of-month month day-of-week)."
        );
        assert_eq!(
            flowing_text("First paragraph\nwrapped.\n\nSecond one."),
            "First paragraph wrapped.\n\nSecond one."
        );
        assert_eq!(
            flowing_text("Kinds:\n- Deployment\n- StatefulSet, which\n  wraps\n1. numbered"),
            "Kinds:\n- Deployment\n- StatefulSet, which wraps\n1. numbered"
        );
    }

    #[test]
    fn unsigned_formats_become_bounds() {
        let mut schema = JSONSchemaProps {
            type_: Some("integer".into()),
            format: Some("uint16".into()),
            minimum: Some(0.0),
            ..Default::default()
        };
        finish_schema(&mut schema);
        assert_eq!(schema.format, None);
        assert_eq!(schema.minimum, Some(0.0));
        assert_eq!(schema.maximum, Some(65535.0));
    }
}
