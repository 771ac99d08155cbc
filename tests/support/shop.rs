//! The `shop` Pipeline's objects on the fake API server, as the controller tests read and
//! write them: its Releases, its status, and the RBAC every request must be granted.

#![allow(dead_code)]

use greenlight::controller::rbac;
use serde_json::{Value, json};

use super::fake_api::{FakeApi, Recorded};

/// A Release of `shop` built from `main`, of one artifact `api` at `version`.
pub fn release(name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"pipeline": "shop", "version": version,
                 "artifacts": {"api": format!("registry.example.com/shop/api:{version}")},
                 "source": {"ref": "main", "commit": "3f2a9c1", "author": "carol"},
                 "requestedBy": "ci-bot"}
    })
}

/// The status of environment `env` of Pipeline `shop/shop` (null before it has one).
pub fn env_status(api: &FakeApi, env: &str) -> Value {
    let pipeline = api
        .get("greenlight.dev/v1alpha1", "Pipeline", "shop", "shop")
        .unwrap();
    pipeline["status"]["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == env)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The condition `type_` of Pipeline `shop/shop` (null without one).
pub fn condition_of(api: &FakeApi, type_: &str) -> Value {
    let pipeline = api
        .get("greenlight.dev/v1alpha1", "Pipeline", "shop", "shop")
        .unwrap_or(Value::Null);
    pipeline["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Every one of `requests` that is a resource request is granted by the RBAC `table`
/// (`rbac::required()`, which the chart's Roles are checked against, or a remote one).
pub fn assert_granted(requests: &[Recorded], table: &[rbac::Permission]) {
    for r in requests {
        let path = if r.query.is_empty() {
            r.path.clone()
        } else {
            format!("{}?{}", r.path, r.query)
        };
        let Some(a) = rbac::attributes(r.method.as_str(), &path) else {
            continue; // discovery and /version need no RBAC rule
        };
        assert!(
            table.iter().any(|p| p.group == a.group
                && p.resource == a.resource
                && p.verbs.contains(&a.verb)),
            "{} {path} needs {a:?}, which the RBAC table does not grant",
            r.method
        );
    }
}
