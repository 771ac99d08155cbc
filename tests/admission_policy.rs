//! The chart's approval admission policy, evaluated offline: every CEL expression in
//! `charts/greenlight/files/approval-policy.yaml` (the text the chart ships) is compiled
//! with the `cel` crate and run against sample admission requests the way the API server
//! runs a ValidatingAdmissionPolicy: match the request against `matchConstraints`, bind
//! `variables` in order, evaluate each validation and, for a failure, its
//! `messageExpression`.

use std::{collections::HashMap, sync::Arc};

use cel::{Context, Program, Value};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicySpec;
use serde_json::{Value as Json, json};

const POLICY_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/greenlight/files/approval-policy.yaml"
);

/// The variables a ValidatingAdmissionPolicy expression may name.
const ENVIRONMENT: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "authorizer",
    "variables",
];

/// Named functions and macros of the CEL standard library, which both the `cel` crate
/// and the API server implement. Operators (`_&&_`, `@in`, ...) are not listed.
const PORTABLE_FUNCTIONS: &[&str] = &[
    "has",
    "size",
    "string",
    "int",
    "uint",
    "double",
    "all",
    "exists",
    "exists_one",
    "filter",
    "map",
    "startsWith",
    "endsWith",
    "contains",
];

/// One validation, compiled.
struct Validation {
    expression: String,
    program: Program,
    message_program: Program,
}

/// The policy as the chart ships it, compiled.
struct Policy {
    spec: ValidatingAdmissionPolicySpec,
    variables: Vec<(String, Program)>,
    validations: Vec<Validation>,
}

fn compile(what: &str, text: &str) -> Program {
    Program::compile(text).unwrap_or_else(|e| panic!("{what} does not compile: {e}\n{text}"))
}

fn policy() -> Policy {
    let text = std::fs::read_to_string(POLICY_FILE).expect("the chart's policy file exists");
    let spec: ValidatingAdmissionPolicySpec =
        serde_yaml::from_str(&text).expect("the policy file is a ValidatingAdmissionPolicySpec");
    let variables = spec
        .variables
        .clone()
        .expect("the policy declares variables")
        .into_iter()
        .map(|v| {
            let program = compile(&format!("variable {}", v.name), &v.expression);
            (v.name, program)
        })
        .collect();
    let validations = spec
        .validations
        .clone()
        .expect("the policy has validations")
        .into_iter()
        .map(|v| Validation {
            program: compile("validation", &v.expression),
            message_program: compile(
                "messageExpression",
                v.message_expression
                    .as_deref()
                    .unwrap_or_else(|| panic!("{} has no messageExpression", v.expression)),
            ),
            expression: v.expression,
        })
        .collect();
    Policy {
        spec,
        variables,
        validations,
    }
}

/// An admission request, as the API server hands it to the policy.
struct Request {
    operation: &'static str,
    resource: &'static str,
    sub_resource: &'static str,
    username: &'static str,
    /// `None`: the user has no groups, and `request.userInfo.groups` is absent.
    groups: Option<Vec<&'static str>>,
    object: Json,
    old_object: Json,
}

/// What the API server would do with a request.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The policy does not apply to this request.
    NotMatched,
    Allowed,
    /// Denied, with the message of every failed validation.
    Denied(Vec<String>),
}

impl Outcome {
    fn denied_with(&self, message: &str) -> bool {
        matches!(self, Outcome::Denied(messages) if messages.iter().any(|m| m == message))
    }
}

fn to_cel(value: &Json) -> Value {
    cel::to_value(value).expect("JSON converts to a CEL value")
}

impl Policy {
    /// Whether `matchConstraints` selects the request (group, operation, resource and
    /// subresource as RBAC-style rules name them: `approvals` is the main resource only).
    fn matches(&self, request: &Request) -> bool {
        let constraints = self
            .spec
            .match_constraints
            .as_ref()
            .expect("matchConstraints");
        let resource = if request.sub_resource.is_empty() {
            request.resource.to_owned()
        } else {
            format!("{}/{}", request.resource, request.sub_resource)
        };
        constraints.resource_rules.iter().flatten().any(|rule| {
            let listed = |list: &Option<Vec<String>>, value: &str| {
                list.iter().flatten().any(|v| v == "*" || v == value)
            };
            listed(&rule.api_groups, "greenlight.dev")
                && listed(&rule.operations, request.operation)
                && rule
                    .resources
                    .iter()
                    .flatten()
                    .any(|r| *r == resource || (r == "*" && request.sub_resource.is_empty()))
        })
    }

    /// Admits `request` as the API server would, with the chart's `requireRequestedBy`.
    fn admit(&self, request: &Request, require_requested_by: bool) -> Outcome {
        if !self.matches(request) {
            return Outcome::NotMatched;
        }
        let mut user = json!({"username": request.username, "uid": "0a1b"});
        if let Some(groups) = &request.groups {
            user["groups"] = json!(groups);
        }
        let kind = match request.resource {
            "approvals" => "Approval",
            _ => "Release",
        };
        let admission = json!({
            "operation": request.operation,
            "kind": {"group": "greenlight.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "greenlight.dev", "version": "v1alpha1", "resource": request.resource},
            "subResource": request.sub_resource,
            "name": request.object["metadata"]["name"],
            "namespace": "shop",
            "userInfo": user,
            "dryRun": false,
        });
        let mut context = Context::default();
        context.add_variable_from_value("request", to_cel(&admission));
        context.add_variable_from_value("object", to_cel(&request.object));
        context.add_variable_from_value("oldObject", to_cel(&request.old_object));

        // The template puts `requireRequestedBy` first; the file's variables follow, each
        // seeing the ones before it.
        let mut bound: HashMap<String, Value> = HashMap::new();
        bound.insert(
            "requireRequestedBy".into(),
            Value::Bool(require_requested_by),
        );
        for (name, program) in &self.variables {
            context.add_variable_from_value("variables", variables_value(&bound));
            let value = program
                .execute(&context)
                .unwrap_or_else(|e| panic!("variable {name} fails: {e}"));
            bound.insert(name.clone(), value);
        }
        context.add_variable_from_value("variables", variables_value(&bound));

        let mut denials = Vec::new();
        for validation in &self.validations {
            match validation.program.execute(&context) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => {
                    let message = match validation.message_program.execute(&context) {
                        Ok(Value::String(text)) => text.to_string(),
                        other => panic!(
                            "the messageExpression of {} gives {other:?}, not a string",
                            validation.expression
                        ),
                    };
                    assert!(
                        !message.is_empty(),
                        "{} has an empty message",
                        validation.expression
                    );
                    denials.push(message);
                }
                other => panic!(
                    "{} gives {other:?}, not a bool (the API server would fail the request)",
                    validation.expression
                ),
            }
        }
        if denials.is_empty() {
            Outcome::Allowed
        } else {
            Outcome::Denied(denials)
        }
    }
}

fn variables_value(bound: &HashMap<String, Value>) -> Value {
    Value::Map(cel::objects::Map {
        map: Arc::new(
            bound
                .iter()
                .map(|(k, v)| (k.clone().into(), v.clone()))
                .collect(),
        ),
    })
}

fn approval(approver: &str, groups: Option<&[&str]>) -> Json {
    let mut spec = json!({
        "release": "shop-1-4-2",
        "environment": "prod",
        "decision": "Approve",
        "approver": approver,
    });
    if let Some(groups) = groups {
        spec["groups"] = json!(groups);
    }
    json!({
        "apiVersion": "greenlight.dev/v1alpha1",
        "kind": "Approval",
        "metadata": {"name": "shop-1-4-2-prod-bob", "namespace": "shop"},
        "spec": spec,
    })
}

fn release(requested_by: Option<&str>) -> Json {
    let mut spec = json!({
        "pipeline": "shop",
        "version": "1.4.2",
        "artifacts": {"api": "registry.example.com/shop/api@sha256:0123"},
        "source": {"ref": "release/v1.4.2", "commit": "3f2a9c1", "author": "alice"},
    });
    if let Some(who) = requested_by {
        spec["requestedBy"] = json!(who);
    }
    json!({
        "apiVersion": "greenlight.dev/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "shop-1-4-2", "namespace": "shop"},
        "spec": spec,
    })
}

fn create(
    resource: &'static str,
    username: &'static str,
    groups: Option<Vec<&'static str>>,
    object: Json,
) -> Request {
    Request {
        operation: "CREATE",
        resource,
        sub_resource: "",
        username,
        groups,
        object,
        old_object: Json::Null,
    }
}

fn update(
    resource: &'static str,
    username: &'static str,
    old_object: Json,
    object: Json,
) -> Request {
    Request {
        operation: "UPDATE",
        resource,
        sub_resource: "",
        username,
        groups: Some(vec!["system:authenticated"]),
        object,
        old_object,
    }
}

#[test]
fn the_policy_file_is_well_formed_and_uses_only_portable_cel() {
    let policy = policy();
    let binder =
        regex::Regex::new(r"\.(?:all|exists|exists_one|filter|map)\(\s*(\w+)\s*,").unwrap();
    let mut declared = vec!["requireRequestedBy".to_owned()];
    for (name, _) in &policy.variables {
        assert!(
            !declared.contains(name),
            "variable {name} is declared twice (or clashes with the template's)"
        );
        declared.push(name.clone());
    }
    let variable_use = regex::Regex::new(r"variables\.(\w+)").unwrap();
    let mut texts: Vec<(String, String)> = Vec::new();
    for v in policy.spec.variables.iter().flatten() {
        texts.push((format!("variable {}", v.name), v.expression.clone()));
    }
    for v in policy.spec.validations.iter().flatten() {
        texts.push(("validation".into(), v.expression.clone()));
        texts.push((
            "messageExpression".into(),
            v.message_expression.clone().unwrap_or_default(),
        ));
        assert_eq!(
            v.reason.as_deref(),
            Some("Forbidden"),
            "{}: a denial is Forbidden",
            v.expression
        );
        assert!(
            !v.message.as_deref().unwrap_or_default().trim().is_empty(),
            "{}: the static message is the fallback when the messageExpression fails",
            v.expression
        );
    }
    for (what, text) in &texts {
        let program = compile(what, text);
        let references = program.references();
        let binders: Vec<String> = binder
            .captures_iter(text)
            .map(|c| c[1].to_owned())
            .collect();
        for variable in references.variables() {
            assert!(
                ENVIRONMENT.contains(&variable) || binders.iter().any(|b| b == variable),
                "{what}: `{variable}` is not a variable of a ValidatingAdmissionPolicy\n{text}"
            );
        }
        for function in references.functions() {
            let named = function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !function.starts_with('_');
            assert!(
                !named || PORTABLE_FUNCTIONS.contains(&function),
                "{what}: `{function}` may not exist in the API server's CEL\n{text}"
            );
        }
        for used in variable_use.captures_iter(text) {
            assert!(
                declared.iter().any(|d| d == &used[1]),
                "{what}: variables.{} is not declared\n{text}",
                &used[1]
            );
        }
    }
    // Each variable may only use the ones declared before it (the API server's rule).
    let mut before = vec!["requireRequestedBy".to_owned()];
    for v in policy.spec.variables.iter().flatten() {
        for used in variable_use.captures_iter(&v.expression) {
            assert!(
                before.iter().any(|d| d == &used[1]),
                "variable {} uses variables.{}, declared after it",
                v.name,
                &used[1]
            );
        }
        before.push(v.name.clone());
    }
}

#[test]
fn only_the_main_resources_are_matched_so_status_writes_pass() {
    let policy = policy();
    let mut status_write = update(
        "approvals",
        "system:serviceaccount:greenlight-system:greenlight",
        approval("bob", None),
        approval("mallory", None),
    );
    status_write.sub_resource = "status";
    assert_eq!(policy.admit(&status_write, true), Outcome::NotMatched);
    let mut release_status = update(
        "releases",
        "system:serviceaccount:greenlight-system:greenlight",
        release(Some("ci")),
        release(Some("ci")),
    );
    release_status.sub_resource = "status";
    assert_eq!(policy.admit(&release_status, true), Outcome::NotMatched);
    // A Release's requestedBy is immutable by the CRD's own rule; updates (CI patching
    // checks) are not the policy's business.
    let checks_patch = update("releases", "ci", release(Some("ci")), release(Some("ci")));
    assert_eq!(policy.admit(&checks_patch, true), Outcome::NotMatched);
    let mut delete = update("approvals", "alice", approval("bob", None), Json::Null);
    delete.operation = "DELETE";
    assert_eq!(policy.admit(&delete, true), Outcome::NotMatched);
}

#[test]
fn an_approval_by_its_approver_in_the_named_groups_is_allowed() {
    let policy = policy();
    let request = create(
        "approvals",
        "bob",
        Some(vec!["release-managers", "sre", "system:authenticated"]),
        approval("bob", Some(&["release-managers", "sre"])),
    );
    assert_eq!(policy.admit(&request, true), Outcome::Allowed);
}

#[test]
fn an_approval_in_someone_elses_name_is_denied() {
    let policy = policy();
    let request = create(
        "approvals",
        "alice",
        Some(vec!["release-managers"]),
        approval("bob", Some(&["release-managers"])),
    );
    assert_eq!(
        policy.admit(&request, true),
        Outcome::Denied(vec![
            r#"spec.approver is "bob" but the request was made by "alice": an Approval must be created by its approver"#
                .into()
        ])
    );
}

#[test]
fn an_approval_naming_a_group_the_user_is_not_in_is_denied() {
    let policy = policy();
    let one = create(
        "approvals",
        "bob",
        Some(vec!["developers", "system:authenticated"]),
        approval("bob", Some(&["developers", "release-managers"])),
    );
    assert_eq!(
        policy.admit(&one, true),
        Outcome::Denied(vec![
            r#"spec.groups names "release-managers" but the request was made by "bob", who is not a member: name only groups the approver belongs to"#
                .into()
        ])
    );
    let three = create(
        "approvals",
        "bob",
        Some(vec!["developers"]),
        approval(
            "bob",
            Some(&["release-managers", "developers", "sre", "cab"]),
        ),
    );
    assert!(
        policy.admit(&three, true).denied_with(
            r#"spec.groups names "release-managers" (and 2 more) but the request was made by "bob", who is not a member: name only groups the approver belongs to"#
        ),
        "{:?}",
        policy.admit(&three, true)
    );
}

#[test]
fn a_user_without_groups_may_approve_only_without_naming_groups() {
    let policy = policy();
    let claims_group = create(
        "approvals",
        "bob",
        None,
        approval("bob", Some(&["release-managers"])),
    );
    assert!(policy.admit(&claims_group, true).denied_with(
        r#"spec.groups names "release-managers" but the request was made by "bob", who is not a member: name only groups the approver belongs to"#
    ));
    let no_groups_field = create("approvals", "bob", None, approval("bob", None));
    assert_eq!(policy.admit(&no_groups_field, true), Outcome::Allowed);
    let empty_groups = create("approvals", "bob", None, approval("bob", Some(&[])));
    assert_eq!(policy.admit(&empty_groups, true), Outcome::Allowed);
}

#[test]
fn forging_both_approver_and_groups_reports_both() {
    let policy = policy();
    let request = create(
        "approvals",
        "mallory",
        Some(vec!["developers"]),
        approval("bob", Some(&["release-managers"])),
    );
    match policy.admit(&request, true) {
        Outcome::Denied(messages) => {
            assert_eq!(messages.len(), 2, "{messages:?}");
            assert!(messages[0].starts_with(r#"spec.approver is "bob""#));
            assert!(messages[1].starts_with(r#"spec.groups names "release-managers""#));
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn an_approvals_spec_never_changes_but_its_metadata_may() {
    let policy = policy();
    let before = approval("bob", Some(&["release-managers"]));
    let mut labelled = before.clone();
    labelled["metadata"]["labels"] = json!({"ticket": "CAB-1234"});
    // Someone else (a GitOps tool, an admin) may label it: the approver check is for
    // creation only.
    assert_eq!(
        policy.admit(
            &update("approvals", "argocd", before.clone(), labelled),
            true
        ),
        Outcome::Allowed
    );

    let mut rejected = before.clone();
    rejected["spec"]["decision"] = json!("Reject");
    assert_eq!(
        policy.admit(&update("approvals", "bob", before.clone(), rejected), true),
        Outcome::Denied(vec![
            r#"the spec of Approval "shop-1-4-2-prod-bob" cannot be changed (update by "bob"): delete the Approval and create a new one"#
                .into()
        ])
    );
    let mut more_groups = before.clone();
    more_groups["spec"]["groups"] = json!(["release-managers", "sre"]);
    assert!(matches!(
        policy.admit(&update("approvals", "bob", before, more_groups), true),
        Outcome::Denied(_)
    ));
}

#[test]
fn a_release_requested_by_its_creator_is_allowed() {
    let policy = policy();
    let ci = "system:serviceaccount:ci:builder";
    let request = create(
        "releases",
        ci,
        Some(vec!["system:serviceaccounts"]),
        release(Some(ci)),
    );
    assert_eq!(policy.admit(&request, true), Outcome::Allowed);
    assert_eq!(policy.admit(&request, false), Outcome::Allowed);
}

#[test]
fn a_release_requested_in_someone_elses_name_is_denied() {
    let policy = policy();
    let request = create(
        "releases",
        "alice",
        Some(vec!["developers"]),
        release(Some("system:serviceaccount:ci:builder")),
    );
    let expected = Outcome::Denied(vec![
        r#"spec.requestedBy is "system:serviceaccount:ci:builder" but the request was made by "alice": a Release must be created by the user it names"#
            .into(),
    ]);
    assert_eq!(policy.admit(&request, true), expected);
    assert_eq!(policy.admit(&request, false), expected);
}

#[test]
fn a_release_without_requested_by_is_denied_unless_the_chart_allows_it() {
    let policy = policy();
    let request = create("releases", "alice", Some(vec!["developers"]), release(None));
    assert_eq!(
        policy.admit(&request, true),
        Outcome::Denied(vec![
            r#"spec.requestedBy is missing: set it to "alice", the user creating this Release"#
                .into()
        ])
    );
    assert_eq!(policy.admit(&request, false), Outcome::Allowed);
}

#[test]
fn the_release_rules_do_not_touch_approvals_and_vice_versa() {
    let policy = policy();
    // An Approval has no requestedBy; a Release has no approver or groups.
    let approval = create("approvals", "bob", None, approval("bob", None));
    assert_eq!(policy.admit(&approval, true), Outcome::Allowed);
    let release = create("releases", "bob", Some(vec!["x"]), release(Some("bob")));
    assert_eq!(policy.admit(&release, true), Outcome::Allowed);
}
