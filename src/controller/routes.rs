//! HTTPRoutes of environments that split canary traffic by weight (`rollout.gatewayAPI`):
//! watched where the API server serves the Gateway API, cached as their rules' backends,
//! and changed by a JSON patch of two weights.
//!
//! Why a JSON patch and not server-side apply: `spec.rules` and each rule's `backendRefs`
//! are atomic lists in the Gateway API CRDs (they carry no `x-kubernetes-list-type`), so an
//! apply body would have to hold every rule of the route, and Greenlight would come to own
//! them all. The patch tests the route's `resourceVersion` and the two backends' names, then
//! sets their `weight` under the field manager `greenlight`: nothing else of the route
//! changes, or changes owner. A route changed in between fails the test (422) and the next
//! decision tries again on the new version.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{rbac, slim::identity};
use crate::engine::{Backend, RouteRef, RouteView};

/// The Gateway API version whose HTTPRoutes Greenlight reads and patches.
pub const GROUP_VERSION: &str = "gateway.networking.k8s.io/v1";

/// The permission on HTTPRoutes: watch them, patch two weights.
pub const PERMISSION: rbac::Permission = rbac::Permission {
    group: "gateway.networking.k8s.io",
    resource: "httproutes",
    verbs: &["get", "list", "watch", "patch"],
    scope: rbac::Scope::Watched,
    why: "canary traffic by weight (rollout.gatewayAPI): read the route, set two backend weights",
};

/// An HTTPRoute as cached: identity and its rules' backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedRoute {
    /// Identity only.
    #[serde(default, deserialize_with = "identity")]
    pub metadata: ObjectMeta,
    /// The rules.
    #[serde(default)]
    pub spec: RouteSpec,
}

/// `spec`, its rules only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// `rules`.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
}

/// A rule, its backends only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    /// `backendRefs`.
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

/// A backend reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRef {
    /// API group; absent or `""`: the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; absent: `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace; absent: the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Weight; absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

crate::controller::slim::cached_resource!(
    CachedRoute,
    "gateway.networking.k8s.io",
    "v1",
    "HTTPRoute",
    "httproutes"
);

impl BackendRef {
    /// Whether it names a Service of the route's own namespace.
    fn is_local_service(&self, route_namespace: &str) -> bool {
        self.group.as_deref().unwrap_or_default().is_empty()
            && self.kind.as_deref().unwrap_or("Service") == "Service"
            && self.namespace.as_deref().unwrap_or(route_namespace) == route_namespace
    }
}

/// The route as the engine sees it: each rule's Services of its own namespace.
pub fn view(route: &CachedRoute, cluster: Option<&str>) -> RouteView {
    let namespace = route.metadata.namespace.clone().unwrap_or_default();
    let rules = route
        .spec
        .rules
        .iter()
        .map(|rule| {
            rule.backend_refs
                .iter()
                .filter(|b| b.is_local_service(&namespace))
                .map(|b| Backend {
                    service: b.name.clone(),
                    weight: u32::try_from(b.weight.unwrap_or(1)).unwrap_or(0),
                })
                .collect()
        })
        .collect();
    RouteView {
        route: RouteRef {
            cluster: cluster.map(str::to_owned),
            namespace: namespace.clone(),
            name: route.metadata.name.clone().unwrap_or_default(),
        },
        rules,
    }
}

/// The JSON patch (RFC 6902) that gives `canary` `weight` and `stable` `100 - weight` in
/// every rule of `route` (the live object) that names both; or why there is none.
pub fn weight_patch(
    route: &Value,
    stable: &str,
    canary: &str,
    weight: u32,
) -> Result<Value, String> {
    let namespace = route
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": route.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
    })];
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut matched = false;
    for (r, rule) in rules.iter().enumerate() {
        let refs = rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let index_of = |service: &str| {
            refs.iter().position(|b| {
                serde_json::from_value::<BackendRef>(b.clone())
                    .is_ok_and(|b| b.name == service && b.is_local_service(namespace))
            })
        };
        let (Some(s), Some(c)) = (index_of(stable), index_of(canary)) else {
            continue;
        };
        matched = true;
        for (b, name, share) in [(s, stable, 100 - weight), (c, canary, weight)] {
            let at = format!("/spec/rules/{r}/backendRefs/{b}");
            ops.push(json!({"op": "test", "path": format!("{at}/name"), "value": name}));
            ops.push(json!({"op": "add", "path": format!("{at}/weight"), "value": share}));
        }
    }
    if !matched {
        return Err(format!(
            "no rule's backendRefs name both Service {stable} and Service {canary}"
        ));
    }
    Ok(Value::Array(ops))
}

/// The HTTPRoutes of one cluster (or namespace), if it serves the Gateway API.
#[derive(Clone)]
pub struct RouteStore(Store<CachedRoute>);

/// The routes a watch touched, as (namespace, name), or its errors.
pub type Touched = BoxStream<'static, Result<(String, String), watcher::Error>>;

impl RouteStore {
    /// A store of HTTPRoutes (in `namespace`, or the whole cluster) and the stream that
    /// fills it. The stream first asks the API server whether it serves HTTPRoutes (asking
    /// again with backoff while it cannot answer); where it does not, the store is ready
    /// and stays empty, an environment with `gatewayAPI` waits for its route, and the API
    /// server is asked again every `rediscover`.
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        rediscover: Duration,
    ) -> (Self, Touched) {
        let (reader, writer) = reflector::store::<CachedRoute>();
        let api: Api<CachedRoute> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let stream = super::discovery::when_served(
            client.clone(),
            (GROUP_VERSION.to_owned(), "httproutes"),
            rediscover,
            "environments with rollout.gatewayAPI wait for their route".to_owned(),
            writer,
            move |writer| {
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(writer)
                    .touched_objects()
                    .map(|r| {
                        r.map(|route| {
                            let name = route.metadata.name.unwrap_or_default();
                            (route.metadata.namespace.unwrap_or_default(), name)
                        })
                    })
                    .boxed()
            },
        );
        (Self(reader), stream)
    }

    /// Whether the store has its initial list (or knows there is none to have).
    pub async fn wait_until_ready(&self) -> bool {
        super::world::ready(&self.0).await
    }

    /// The route `name` in `namespace`, as the engine sees it.
    pub fn view(&self, namespace: &str, name: &str, cluster: Option<&str>) -> Option<RouteView> {
        self.0
            .get(&ObjectRef::new(name).within(namespace))
            .map(|route| view(&route, cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop", "namespace": "prod", "resourceVersion": "41",
                         "managedFields": [{"manager": "argocd"}]},
            "spec": {"parentRefs": [{"name": "public"}], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": "admin", "port": 80}]},
                {"backendRefs": [
                    {"name": "shop-stable", "port": 80, "weight": 100},
                    {"name": "shop-canary", "port": 80}]},
                {"backendRefs": [
                    {"name": "shop-canary", "kind": "Service", "group": "", "port": 80, "weight": 0},
                    {"name": "shop-stable", "namespace": "prod", "port": 80, "weight": 100}]},
                {"backendRefs": [
                    {"name": "shop-stable", "namespace": "other", "port": 80},
                    {"name": "shop-canary", "port": 80}]}
            ]}
        })
    }

    #[test]
    fn the_cache_keeps_each_rules_local_services_and_weights() {
        let cached: CachedRoute = serde_json::from_value(route()).unwrap();
        assert_eq!(cached.metadata.managed_fields, None, "identity only");
        let seen = view(&cached, Some("eu"));
        assert_eq!(seen.route.to_string(), "HTTPRoute prod/shop in cluster eu");
        let weights: Vec<Vec<(&str, u32)>> = seen
            .rules
            .iter()
            .map(|r| r.iter().map(|b| (b.service.as_str(), b.weight)).collect())
            .collect();
        assert_eq!(
            weights,
            vec![
                vec![("admin", 1)],
                vec![("shop-stable", 100), ("shop-canary", 1)],
                vec![("shop-canary", 0), ("shop-stable", 100)],
                vec![("shop-canary", 1)],
            ],
            "an absent weight is 1; a Service of another namespace is not the route's"
        );
        assert_eq!(
            seen.split("shop-stable", "shop-canary"),
            vec![(100, 1), (100, 0)]
        );
    }

    #[test]
    fn the_patch_sets_two_weights_in_each_rule_naming_both_and_nothing_else() {
        let patch = weight_patch(&route(), "shop-stable", "shop-canary", 10).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
                {"op": "test", "path": "/spec/rules/1/backendRefs/0/name", "value": "shop-stable"},
                {"op": "add", "path": "/spec/rules/1/backendRefs/0/weight", "value": 90},
                {"op": "test", "path": "/spec/rules/1/backendRefs/1/name", "value": "shop-canary"},
                {"op": "add", "path": "/spec/rules/1/backendRefs/1/weight", "value": 10},
                {"op": "test", "path": "/spec/rules/2/backendRefs/1/name", "value": "shop-stable"},
                {"op": "add", "path": "/spec/rules/2/backendRefs/1/weight", "value": 90},
                {"op": "test", "path": "/spec/rules/2/backendRefs/0/name", "value": "shop-canary"},
                {"op": "add", "path": "/spec/rules/2/backendRefs/0/weight", "value": 10},
            ])
        );
        let error = weight_patch(&route(), "shop-stable", "shop-preview", 10).unwrap_err();
        assert_eq!(
            error,
            "no rule's backendRefs name both Service shop-stable and Service shop-preview"
        );
    }
}
