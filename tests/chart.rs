//! The Helm chart `charts/greenlight`, rendered with `helm template` for the default,
//! namespaced and everything-on values: every object is a real Kubernetes kind without a
//! misspelled field, the controller's RBAC is exactly `controller::rbac::required()` in the
//! right scope, the Deployment is locked down and probed, the admission policy ships the
//! CEL of `files/approval-policy.yaml`, and the chart's CRDs are the generated ones.
//!
//! Needs `helm` on PATH; without it the helm tests print why and pass, unless
//! `GREENLIGHT_REQUIRE_HELM=1` (set by `.ci/run`), which makes a missing helm a failure.

use std::{collections::BTreeSet, path::Path, process::Command};

use greenlight::controller::rbac::{Scope, remote, remote_sync, required};
use k8s_openapi::{
    api::{
        admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding},
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value as Json, json};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/greenlight");
const RELEASE_NAMESPACE: &str = "greenlight-system";

/// A values file of the chart's `ci/` directory, or the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Values {
    Default,
    Namespaced,
    AllOn,
}

impl Values {
    const ALL: [Values; 3] = [Values::Default, Values::Namespaced, Values::AllOn];

    fn file(self) -> Option<&'static str> {
        match self {
            Values::Default => None,
            Values::Namespaced => Some("ci/namespaced-values.yaml"),
            Values::AllOn => Some("ci/all-on-values.yaml"),
        }
    }

    /// The namespace the controller watches, as the values file sets it.
    fn watch_namespace(self) -> Option<&'static str> {
        (self == Values::Namespaced).then_some("shop")
    }
}

/// Whether helm runs here. Without it: `false` after saying why the test skips, or a
/// failure when `GREENLIGHT_REQUIRE_HELM=1`.
fn helm_available() -> bool {
    let works = Command::new("helm")
        .args(["version", "--short"])
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return true;
    }
    let required =
        std::env::var("GREENLIGHT_REQUIRE_HELM").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "GREENLIGHT_REQUIRE_HELM is set but `helm` does not run; install it with \
         ../shared/tools/install-helm.sh DIR and put DIR on PATH"
    );
    eprintln!(
        "skipping: `helm` is not on PATH (install it with ../shared/tools/install-helm.sh DIR; \
         GREENLIGHT_REQUIRE_HELM=1 makes this a failure)"
    );
    false
}

fn helm(args: &[&str]) -> Result<String, String> {
    let out = Command::new("helm")
        .args(args)
        .current_dir(CHART)
        .output()
        .map_err(|e| format!("cannot run helm: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
    } else {
        Err(format!(
            "helm {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Every document `helm template` renders for `values` (CRDs included), as JSON.
fn render(values: Values, extra: &[&str]) -> Vec<Json> {
    let mut args = vec![
        "template",
        "gl",
        ".",
        "--namespace",
        RELEASE_NAMESPACE,
        "--include-crds",
    ];
    if let Some(file) = values.file() {
        args.extend(["--values", file]);
    }
    args.extend(extra);
    let text = helm(&args).unwrap_or_else(|e| panic!("{values:?}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Json::deserialize(doc).unwrap_or_else(|e| panic!("{values:?}: bad YAML: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn kind(doc: &Json) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Json) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn only<'a>(docs: &'a [Json], wanted: &str) -> &'a Json {
    let found: Vec<&Json> = docs.iter().filter(|d| kind(d) == wanted).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {wanted}, found {}",
        found.len()
    );
    found[0]
}

/// `value` without `null` members, which typed serialization leaves out.
fn without_nulls(value: &Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The first place where `a` and `b` differ, as a JSON path.
fn first_difference(path: &str, a: &Json, b: &Json) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(v), Some(w)) => first_difference(&format!("{path}.{k}"), v, w),
                (Some(_), None) => Some(format!("{path}.{k} is not a field of the type")),
                (None, Some(_)) => Some(format!("{path}.{k} appears only after the round trip")),
                (None, None) => None,
            })
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(&format!("{path}[{i}]"), v, w)),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} becomes {b}")),
    }
}

/// Deserializes `doc` as `T` and serializes it back: a field the type does not know (a
/// typo) or a value of the wrong type shows up as a difference.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Json) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference("", &without_nulls(doc), &back) {
        None => Ok(()),
        Some(difference) => Err(difference),
    }
}

/// Field names allowed in the Prometheus Operator objects, which k8s-openapi lacks. Nested
/// objects (labels, annotations, selectors, relabelings) are not checked below `spec`'s
/// first two levels.
fn check_monitoring(doc: &Json) -> Result<(), String> {
    let allowed = |object: &Json, fields: &[&str], at: &str| -> Result<(), String> {
        for key in object
            .as_object()
            .ok_or(format!("{at} is not an object"))?
            .keys()
        {
            if !fields.contains(&key.as_str()) {
                return Err(format!("{at}.{key} is not a field of {}", kind(doc)));
            }
        }
        Ok(())
    };
    allowed(doc, &["apiVersion", "kind", "metadata", "spec"], "")?;
    let spec = &doc["spec"];
    match kind(doc) {
        "ServiceMonitor" => {
            allowed(
                spec,
                &[
                    "selector",
                    "namespaceSelector",
                    "endpoints",
                    "jobLabel",
                    "targetLabels",
                    "podTargetLabels",
                    "sampleLimit",
                ],
                ".spec",
            )?;
            for (i, endpoint) in spec["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                allowed(
                    endpoint,
                    &[
                        "port",
                        "targetPort",
                        "path",
                        "scheme",
                        "interval",
                        "scrapeTimeout",
                        "honorLabels",
                        "relabelings",
                        "metricRelabelings",
                        "tlsConfig",
                        "params",
                    ],
                    &format!(".spec.endpoints[{i}]"),
                )?;
            }
            Ok(())
        }
        "PrometheusRule" => {
            allowed(spec, &["groups"], ".spec")?;
            for (i, group) in spec["groups"].as_array().into_iter().flatten().enumerate() {
                allowed(
                    group,
                    &[
                        "name",
                        "interval",
                        "rules",
                        "limit",
                        "partial_response_strategy",
                        "labels",
                    ],
                    &format!(".spec.groups[{i}]"),
                )?;
                for (j, rule) in group["rules"].as_array().into_iter().flatten().enumerate() {
                    allowed(
                        rule,
                        &[
                            "alert",
                            "record",
                            "expr",
                            "for",
                            "keep_firing_for",
                            "labels",
                            "annotations",
                        ],
                        &format!(".spec.groups[{i}].rules[{j}]"),
                    )?;
                }
            }
            Ok(())
        }
        other => Err(format!("monitoring.coreos.com/v1 {other} is not expected")),
    }
}

/// Checks one rendered object against its real type.
fn check_object(doc: &Json) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    match (api_version, kind(doc)) {
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Secret") => round_trip::<Secret>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            round_trip::<ValidatingAdmissionPolicy>(doc)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            round_trip::<ValidatingAdmissionPolicyBinding>(doc)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(doc)
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor" | "PrometheusRule") => check_monitoring(doc),
        (api_version, kind) => Err(format!(
            "{api_version} {kind} is not a kind the chart should render"
        )),
    }
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let path = Path::new(CHART).join("crds/greenlight.dev.yaml");
    let in_chart = std::fs::read_to_string(&path).expect("the chart has crds/greenlight.dev.yaml");
    assert!(
        in_chart == greenlight::api::crds_yaml(),
        "charts/greenlight/crds/greenlight.dev.yaml is stale: run \
         `cargo run -- crds > charts/greenlight/crds/greenlight.dev.yaml`"
    );
}

#[test]
fn the_chart_lints_strictly_and_its_schema_rejects_unknown_values() {
    if !helm_available() {
        return;
    }
    for values in Values::ALL {
        let mut args = vec!["lint", "--strict", "."];
        if let Some(file) = values.file() {
            args.extend(["--values", file]);
        }
        helm(&args).unwrap_or_else(|e| panic!("{values:?}: {e}"));
    }
    let typo = helm(&["template", "gl", ".", "--set", "replicas=3"])
        .expect_err("values.schema.json rejects a misspelled key");
    assert!(typo.contains("replicas"), "{typo}");
    let bad_namespace = helm(&["template", "gl", ".", "--set", "watchNamespace=Shop_1"])
        .expect_err("values.schema.json rejects a namespace that is no DNS label");
    assert!(bad_namespace.contains("watchNamespace"), "{bad_namespace}");
}

#[test]
fn every_rendered_object_is_a_real_kind_without_unknown_fields() {
    if !helm_available() {
        return;
    }
    for values in Values::ALL {
        let docs = render(values, &[]);
        assert!(docs.len() >= 10, "{values:?}: only {} objects", docs.len());
        for doc in &docs {
            if let Err(problem) = check_object(doc) {
                panic!("{values:?}: {} {}: {problem}", kind(doc), name(doc));
            }
            let namespaced = !matches!(
                kind(doc),
                "ClusterRole"
                    | "ClusterRoleBinding"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
                    | "CustomResourceDefinition"
            );
            assert_eq!(
                doc["metadata"]["namespace"].is_string(),
                namespaced,
                "{values:?}: {} {} namespace",
                kind(doc),
                name(doc)
            );
            if kind(doc) != "CustomResourceDefinition" {
                assert_eq!(
                    doc["metadata"]["labels"]["app.kubernetes.io/instance"],
                    "gl",
                    "{values:?}: {} {} lacks the chart's labels",
                    kind(doc),
                    name(doc)
                );
            }
        }
        let crds = docs
            .iter()
            .filter(|d| kind(d) == "CustomResourceDefinition")
            .count();
        assert_eq!(crds, 3, "{values:?}: --include-crds renders the three CRDs");
        let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
        for expected in [
            "Deployment",
            "ServiceAccount",
            "Service",
            "Role",
            "RoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ] {
            assert!(kinds.contains(expected), "{values:?}: no {expected}");
        }
        if values == Values::AllOn {
            assert!(
                kinds.contains("ServiceMonitor"),
                "serviceMonitor.enabled renders one"
            );
            assert!(
                kinds.contains("PrometheusRule"),
                "prometheusRule.enabled renders one"
            );
        } else {
            assert!(
                !kinds.contains("ServiceMonitor"),
                "{values:?}: ServiceMonitor is opt-in"
            );
            assert!(
                !kinds.contains("PrometheusRule"),
                "{values:?}: PrometheusRule is opt-in"
            );
        }
    }
}

/// One granted (scope, group, resource, verb), with the resource names it is limited to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    /// `None`: cluster-wide; else the namespace.
    namespace: Option<String>,
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

/// Every grant bound to the ServiceAccount `account` in `RELEASE_NAMESPACE`.
fn grants_of(docs: &[Json], account: &str) -> Vec<Grant> {
    let mut grants = Vec::new();
    for binding in docs
        .iter()
        .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
    {
        let binds_account = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == account
                    && s["namespace"] == RELEASE_NAMESPACE
            });
        if !binds_account {
            continue;
        }
        let binding_namespace = binding["metadata"]["namespace"].as_str().map(str::to_owned);
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap();
        let role_name = &binding["roleRef"]["name"];
        let role = docs
            .iter()
            .find(|d| {
                kind(d) == role_kind
                    && &d["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole"
                        || d["metadata"]["namespace"].as_str() == binding_namespace.as_deref())
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} {} binds a missing {role_kind} {role_name}",
                    kind(binding),
                    name(binding)
                )
            });
        for rule in role["rules"].as_array().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{}: nonResourceURLs",
                name(role)
            );
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        grants.push(Grant {
                            namespace: binding_namespace.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: list("resourceNames"),
                        });
                    }
                }
            }
        }
    }
    grants
}

/// The value of `--flag value` or `--flag=value` in `args`.
fn flag<'a>(args: &'a [Json], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, arg)| {
        let arg = arg.as_str()?;
        if arg == flag {
            args.get(i + 1)?.as_str()
        } else {
            arg.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

fn controller_container(docs: &[Json]) -> &Json {
    let deployment = only(docs, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one controller container");
    &containers[0]
}

#[test]
fn controller_rbac_is_exactly_the_required_table_in_the_right_scope() {
    if !helm_available() {
        return;
    }
    for values in Values::ALL {
        let docs = render(values, &[]);
        let deployment = only(&docs, "Deployment");
        let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .expect("the Deployment names its ServiceAccount");
        if values == Values::AllOn {
            assert_eq!(
                account, "greenlight-controller",
                "serviceAccount.name is used"
            );
        }
        assert!(
            docs.iter()
                .any(|d| kind(d) == "ServiceAccount" && name(d) == account),
            "{values:?}: the ServiceAccount {account} is not rendered"
        );
        let args = controller_container(&docs)["args"].as_array().unwrap();
        let lease = flag(args, "--lease-name").unwrap_or("greenlight-controller");
        assert_eq!(
            flag(args, "--namespace"),
            values.watch_namespace(),
            "{values:?}: --namespace"
        );
        assert_eq!(
            flag(args, "--selector"),
            (values == Values::AllOn).then_some("greenlight.dev/shard=a"),
            "{values:?}: --selector shards by pipelineSelector"
        );
        assert!(
            flag(args, "--lease-namespace").is_none(),
            "{values:?}: the Lease lives in the release namespace ($POD_NAMESPACE)"
        );

        let grants = grants_of(&docs, account);
        let watched = values.watch_namespace().map(str::to_owned);
        let scope_of = |scope: Scope| match scope {
            Scope::Watched => watched.clone(),
            Scope::Lease => Some(RELEASE_NAMESPACE.to_owned()),
        };
        // Covers every entry, in its scope; a name restriction must allow the Lease.
        let required = required();
        for permission in &required {
            for verb in permission.verbs {
                let covered = grants.iter().any(|g| {
                    g.namespace == scope_of(permission.scope)
                        && g.group == permission.group
                        && g.resource == permission.resource
                        && g.verb == *verb
                        && (g.names.is_empty()
                            || (permission.scope == Scope::Lease && g.names == [lease]))
                });
                assert!(
                    covered,
                    "{values:?}: {verb} {}/{} ({}) is not granted in {:?}",
                    permission.group,
                    permission.resource,
                    permission.why,
                    scope_of(permission.scope).unwrap_or_else(|| "the cluster".into())
                );
            }
        }
        // Grants nothing else, and nothing in another scope.
        for grant in &grants {
            let listed = required.iter().any(|p| {
                scope_of(p.scope) == grant.namespace
                    && p.group == grant.group
                    && p.resource == grant.resource
                    && p.verbs.contains(&grant.verb.as_str())
            });
            assert!(
                listed,
                "{values:?}: {grant:?} is not in controller::rbac::required()"
            );
        }
        // Name restrictions where RBAC honours them: get and update of the one Lease.
        for grant in grants.iter().filter(|g| g.resource == "leases") {
            match grant.verb.as_str() {
                "get" | "update" => assert_eq!(grant.names, [lease], "{values:?}: {grant:?}"),
                _ => assert!(
                    grant.names.is_empty(),
                    "{values:?}: RBAC cannot limit {grant:?} by name"
                ),
            }
        }
        let expected_kind = if watched.is_some() {
            "Role"
        } else {
            "ClusterRole"
        };
        let watched_rules = required
            .iter()
            .filter(|p| p.scope == Scope::Watched)
            .count();
        assert!(
            docs.iter().any(|d| kind(d) == expected_kind
                && d["rules"]
                    .as_array()
                    .is_some_and(|r| r.len() == watched_rules)),
            "{values:?}: the watched permissions are one {expected_kind} of {watched_rules} rules"
        );
        if watched.is_some() {
            assert!(
                !docs.iter().any(|d| kind(d) == "ClusterRoleBinding"),
                "{values:?}: namespaced mode binds nothing cluster-wide"
            );
        }
    }
}

#[test]
fn user_roles_read_or_approve_and_are_not_the_controllers() {
    if !helm_available() {
        return;
    }
    let docs = render(Values::Default, &[]);
    let role = |suffix: &str| {
        docs.iter()
            .find(|d| kind(d) == "ClusterRole" && name(d) == format!("gl-greenlight-{suffix}"))
            .unwrap_or_else(|| panic!("no ClusterRole gl-greenlight-{suffix}"))
    };
    let triples = |role: &Json| -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            assert_eq!(
                rule["apiGroups"],
                json!(["greenlight.dev"]),
                "{}",
                name(role)
            );
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.insert((
                        resource.as_str().unwrap().into(),
                        verb.as_str().unwrap().into(),
                    ));
                }
            }
        }
        out
    };
    let read: BTreeSet<(String, String)> = ["pipelines", "releases", "approvals"]
        .iter()
        .flat_map(|r| ["get", "list", "watch"].map(|v| (r.to_string(), v.to_string())))
        .collect();
    let viewer = role("viewer");
    assert_eq!(triples(viewer), read);
    for aggregate in ["view", "edit", "admin"] {
        assert_eq!(
            viewer["metadata"]["labels"]
                [format!("rbac.authorization.k8s.io/aggregate-to-{aggregate}")],
            "true"
        );
    }
    let approver = role("approver");
    let mut approve = read.clone();
    approve.insert(("approvals".into(), "create".into()));
    assert_eq!(triples(approver), approve);
    let labels = approver["metadata"]["labels"].as_object().unwrap();
    assert!(
        !labels.keys().any(|k| k.contains("aggregate-to")),
        "approving is granted on purpose, never by aggregation"
    );
    // CI creates Releases and patches their checks, and nothing else: no Approvals (it
    // would approve its own builds), no Pipelines, no status.
    let releaser = role("releaser");
    let release: BTreeSet<(String, String)> = ["create", "get", "list", "watch", "patch"]
        .iter()
        .map(|v| ("releases".to_string(), v.to_string()))
        .collect();
    assert_eq!(triples(releaser), release);
    assert!(
        !releaser["metadata"]["labels"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("aggregate-to")),
        "releasing is granted to CI on purpose, never by aggregation"
    );
    for binding in docs.iter().filter(|d| kind(d).ends_with("Binding")) {
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        assert!(
            !["-viewer", "-approver", "-releaser"]
                .iter()
                .any(|suffix| role_name.ends_with(suffix)),
            "the chart binds the user role {role_name} to someone"
        );
    }
    let off = render(Values::Default, &["--set", "rbac.userRoles.enabled=false"]);
    assert_eq!(off.iter().filter(|d| kind(d) == "ClusterRole").count(), 1);
}

#[test]
fn the_deployment_is_locked_down_probed_and_runs_the_controller() {
    if !helm_available() {
        return;
    }
    let app_version = std::fs::read_to_string(Path::new(CHART).join("Chart.yaml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .expect("Chart.yaml has an appVersion");
    for values in Values::ALL {
        let docs = render(values, &[]);
        let deployment = only(&docs, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = controller_container(&docs);
        assert_eq!(deployment["spec"]["replicas"], 2, "{values:?}");

        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "controller");
        assert!(args.contains(&"--leader-elect"), "{values:?}: {args:?}");
        let arg_values = container["args"].as_array().unwrap();
        assert_eq!(flag(arg_values, "--log-format"), Some("json"));
        assert_eq!(flag(arg_values, "--metrics-addr"), Some("0.0.0.0:8080"));

        let env = container["env"].as_array().unwrap();
        for (variable, field) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            assert!(
                env.iter()
                    .any(|e| e["name"] == variable
                        && e["valueFrom"]["fieldRef"]["fieldPath"] == field),
                "{values:?}: {variable} comes from the downward API ({field})"
            );
        }

        let image = container["image"].as_str().unwrap();
        match values {
            Values::AllOn => assert!(image.contains("@sha256:"), "a digest wins: {image}"),
            _ => assert!(
                image.ends_with(&format!(":{app_version}")),
                "tag defaults to appVersion: {image}"
            ),
        }

        let pod_security = &pod["securityContext"];
        assert_eq!(pod_security["runAsNonRoot"], true);
        assert_eq!(pod_security["runAsUser"], 65532);
        assert_eq!(pod_security["runAsGroup"], 65532);
        assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
        let security = &container["securityContext"];
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["runAsUser"], 65532);
        assert_eq!(security["runAsGroup"], 65532);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
        assert!(security.get("privileged").is_none_or(|p| p == false));

        let resources = &container["resources"];
        for key in ["cpu", "memory"] {
            assert!(
                resources["requests"][key].is_string(),
                "{values:?}: requests.{key}"
            );
        }
        let memory_limit = mebibytes(
            resources["limits"]["memory"]
                .as_str()
                .expect("a memory limit"),
        );
        assert!(
            memory_limit >= 192,
            "{values:?}: the memory limit {memory_limit} MiB leaves too little room above the 128 MiB target"
        );

        let port = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "metrics")
            .expect("a port named metrics");
        assert_eq!(port["containerPort"], 8080);
        assert_eq!(
            container["livenessProbe"]["httpGet"],
            json!({"path": "/healthz", "port": "metrics"})
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"],
            json!({"path": "/readyz", "port": "metrics"})
        );

        let grace = pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("terminationGracePeriodSeconds is set");
        assert!(
            grace >= 15,
            "{values:?}: {grace}s is too short to finish and hand the Lease over"
        );

        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (key, value) in deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                &pod_labels[key], value,
                "{values:?}: the selector selects the pods"
            );
        }
        if values == Values::AllOn {
            assert_eq!(pod["priorityClassName"], "system-cluster-critical");
            assert_eq!(
                pod["imagePullSecrets"],
                json!([{"name": "registry-credentials"}])
            );
            assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
            assert_eq!(pod["tolerations"][0]["key"], "dedicated");
            assert_eq!(pod_labels["team"], "platform");
            assert_eq!(
                deployment["spec"]["template"]["metadata"]["annotations"]["example.com/scrape"],
                "true"
            );
        } else {
            let term = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                [0];
            assert_eq!(
                term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname",
                "{values:?}: soft anti-affinity"
            );
            for (key, value) in term["podAffinityTerm"]["labelSelector"]["matchLabels"]
                .as_object()
                .unwrap()
            {
                assert_eq!(
                    &pod_labels[key], value,
                    "{values:?}: the anti-affinity selects the replicas"
                );
            }
            assert!(
                pod["affinity"]["podAntiAffinity"]
                    .get("requiredDuringSchedulingIgnoredDuringExecution")
                    .is_none()
            );
        }
    }
}

/// A memory quantity in MiB (binary and decimal suffixes, as Kubernetes writes them).
fn mebibytes(quantity: &str) -> u64 {
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{quantity} is not a plain quantity"));
    let bytes = match suffix {
        "Gi" => number << 30,
        "Mi" => number << 20,
        "Ki" => number << 10,
        "G" => number * 1_000_000_000,
        "M" => number * 1_000_000,
        "" => number,
        other => panic!("unexpected memory suffix {other}"),
    };
    bytes >> 20
}

#[test]
fn the_metrics_service_and_service_monitor_reach_the_metrics_port() {
    if !helm_available() {
        return;
    }
    let docs = render(Values::AllOn, &[]);
    let deployment = only(&docs, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = only(&docs, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}])
    );
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[key], value,
            "the Service selects the controller pods"
        );
    }
    let monitor = only(&docs, "ServiceMonitor");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects the Service"
        );
    }
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([RELEASE_NAMESPACE])
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "15s");
}

#[test]
fn the_admission_policy_ships_the_files_cel_and_fails_closed() {
    if !helm_available() {
        return;
    }
    let file: Json = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(CHART).join("files/approval-policy.yaml")).unwrap(),
    )
    .unwrap();
    for (values, require, actions) in [
        (Values::Default, "true", json!(["Deny"])),
        (Values::Namespaced, "true", json!(["Deny"])),
        (Values::AllOn, "false", json!(["Warn", "Audit"])),
    ] {
        let docs = render(values, &[]);
        let policy = only(&docs, "ValidatingAdmissionPolicy");
        let spec = &policy["spec"];
        assert_eq!(spec["failurePolicy"], "Fail", "{values:?}");
        assert_eq!(
            spec["matchConstraints"], file["matchConstraints"],
            "{values:?}"
        );
        assert_eq!(spec["validations"], file["validations"], "{values:?}");
        let mut variables = vec![json!({"name": "requireRequestedBy", "expression": require})];
        variables.extend(file["variables"].as_array().unwrap().iter().cloned());
        assert_eq!(spec["variables"], Json::Array(variables), "{values:?}");

        let binding = only(&docs, "ValidatingAdmissionPolicyBinding");
        assert_eq!(
            binding["spec"]["policyName"], policy["metadata"]["name"],
            "{values:?}"
        );
        assert_eq!(binding["spec"]["validationActions"], actions, "{values:?}");
        let selector = &binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"];
        match values.watch_namespace() {
            Some(namespace) => assert_eq!(selector["kubernetes.io/metadata.name"], namespace),
            None => assert!(
                selector.is_null(),
                "{values:?}: cluster-wide mode guards every namespace"
            ),
        }
    }
    let off = render(Values::Default, &["--set", "admissionPolicy.enabled=false"]);
    assert!(
        !off.iter()
            .any(|d| kind(d).starts_with("ValidatingAdmissionPolicy"))
    );
}

/// The `greenlight-remote` chart, applied in another cluster, grants exactly
/// `controller::rbac::remote()` in each target namespace and `remote_sync()` in each sync
/// namespace, to its ServiceAccount, and nothing cluster-wide; its token Secret is for
/// that ServiceAccount.
#[test]
fn the_remote_chart_grants_exactly_the_remote_table_in_each_target_namespace() {
    if !helm_available() {
        return;
    }
    helm(&["lint", "--strict", "../greenlight-remote"]).unwrap_or_else(|e| panic!("{e}"));
    let text = helm(&[
        "template",
        "gl",
        "../greenlight-remote",
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        "targetNamespaces={shop-prod,shop-db}",
        "--set",
        "syncNamespaces={argocd}",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let docs: Vec<Json> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Json::deserialize(doc).expect("YAML"))
        .filter(|doc| !doc.is_null())
        .collect();
    for doc in &docs {
        check_object(doc).unwrap_or_else(|e| panic!("{} {}: {e}", kind(doc), name(doc)));
    }
    let token = only(&docs, "Secret");
    assert_eq!(token["type"], "kubernetes.io/service-account-token");
    assert_eq!(
        token["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        "greenlight-remote"
    );
    let grants = grants_of(&docs, "greenlight-remote");
    for (namespace, table) in [
        ("shop-prod", remote()),
        ("shop-db", remote()),
        ("argocd", remote_sync()),
    ] {
        let mut granted: Vec<(String, String, String)> = grants
            .iter()
            .filter(|g| g.namespace.as_deref() == Some(namespace))
            .map(|g| (g.group.clone(), g.resource.clone(), g.verb.clone()))
            .collect();
        let mut wanted: Vec<(String, String, String)> = table
            .iter()
            .flat_map(|p| {
                p.verbs
                    .iter()
                    .map(|v| (p.group.to_owned(), p.resource.to_owned(), (*v).to_owned()))
            })
            .collect();
        granted.sort();
        wanted.sort();
        assert_eq!(granted, wanted, "{namespace}");
    }
    assert!(
        grants.iter().all(|g| matches!(
            g.namespace.as_deref(),
            Some("shop-prod" | "shop-db" | "argocd")
        )),
        "nothing cluster-wide nor elsewhere: {grants:?}"
    );
}
