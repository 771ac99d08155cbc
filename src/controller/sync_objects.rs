//! The Argo CD Applications and Flux Kustomizations that apply GitOps environments in the
//! controller's own cluster: watched untyped (their CRDs are not vendored) where the API
//! server serves them, cached trimmed to the status fields `gitops::sync` reads, so that a
//! sync or a health change reconciles its Pipeline at once. Objects the stores do not hold
//! (another cluster, a namespace not watched) are read by `repos` with a GET.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::{Map, Value, json};

use crate::{gitops::sync, validation::SyncSource};

/// The watched objects: one store per kind.
#[derive(Clone)]
pub struct SyncStores {
    argo_cd: (Store<DynamicObject>, ApiResource),
    flux: (Store<DynamicObject>, ApiResource),
}

/// The sync objects a watch touched, as (namespace, name), or its errors.
pub type Touched = BoxStream<'static, Result<(String, String), watcher::Error>>;

impl SyncStores {
    /// Watches both kinds (in `namespace`, or the whole cluster) where they are served,
    /// asking again every `rediscover` for a kind that is not; the streams must be polled
    /// for the stores to fill.
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        rediscover: Duration,
    ) -> (Self, Touched, Touched) {
        let watch = |kind, trim| watch_kind(client, namespace, kind, trim, rediscover);
        let (argo_cd, argo_cd_touched) =
            watch(sync::ARGO_CD, trim_argo_cd as fn(&mut DynamicObject));
        let (flux, flux_touched) = watch(sync::FLUX, trim_flux);
        (Self { argo_cd, flux }, argo_cd_touched, flux_touched)
    }

    /// Whether both stores have their initial list (or know there is none to have).
    pub async fn wait_until_ready(&self) -> bool {
        let (a, b) = futures::join!(
            super::world::ready(&self.argo_cd.0),
            super::world::ready(&self.flux.0)
        );
        a && b
    }

    /// The cached object `source` names, as `{"status": …}`; `None` where the store does
    /// not hold it.
    pub fn get(&self, source: &SyncSource) -> Option<Value> {
        let ((store, resource), namespace, name) = match source {
            SyncSource::ArgoCd { namespace, name } => (&self.argo_cd, namespace, name),
            SyncSource::Flux { namespace, name } => (&self.flux, namespace, name),
            SyncSource::Workloads => return None,
        };
        let key = ObjectRef::new_with(name, resource.clone()).within(namespace);
        store
            .get(&key)
            .map(|object| json!({"status": object.data.get("status").cloned().unwrap_or_default()}))
    }
}

fn watch_kind(
    client: &Client,
    namespace: Option<&str>,
    (group, version, kind, plural): (&'static str, &'static str, &'static str, &'static str),
    trim: fn(&mut DynamicObject),
    rediscover: Duration,
) -> ((Store<DynamicObject>, ApiResource), Touched) {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let writer = reflector::store::Writer::new(resource.clone());
    let api_resource = resource.clone();
    let reader = writer.as_reader();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let stream = super::discovery::when_served(
        client.clone(),
        (format!("{group}/{version}"), plural),
        rediscover,
        "GitOps environments read theirs by name".to_owned(),
        writer,
        move |writer| {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(trim)
                .reflect(writer)
                .touched_objects()
                .map(|r| {
                    r.map(|object| {
                        (
                            object.metadata.namespace.unwrap_or_default(),
                            object.metadata.name.unwrap_or_default(),
                        )
                    })
                })
                .boxed()
        },
    );
    ((reader, api_resource), stream)
}

/// Keeps identity and the fields at `paths` of the status.
fn trim_to(object: &mut DynamicObject, paths: &[&[&str]]) {
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let mut kept = Value::Object(Map::new());
    for path in paths {
        if let Some(value) = path.iter().try_fold(&status, |v, key| v.get(key)) {
            let mut at = &mut kept;
            for key in &path[..path.len() - 1] {
                at = at
                    .as_object_mut()
                    .expect("built of objects")
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            if let Some(map) = at.as_object_mut() {
                map.insert(path[path.len() - 1].to_owned(), value.clone());
            }
        }
    }
    object.data = json!({"status": kept});
    object.metadata.managed_fields = None;
    object.metadata.annotations = None;
    object.metadata.labels = None;
}

/// What `gitops::sync::argo_cd` reads.
fn trim_argo_cd(object: &mut DynamicObject) {
    trim_to(
        object,
        &[
            &["sync", "revision"],
            &["sync", "revisions"],
            &["sync", "status"],
            &["health", "status"],
            &["health", "message"],
            &["operationState", "phase"],
            &["operationState", "message"],
            &["operationState", "syncResult", "revision"],
        ],
    );
}

/// What `gitops::sync::flux` reads (all conditions: Ready is among them).
fn trim_flux(object: &mut DynamicObject) {
    trim_to(
        object,
        &[
            &["lastAppliedRevision"],
            &["lastAttemptedRevision"],
            &["conditions"],
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_only_what_is_read() {
        let mut app: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "namespace": "argocd", "managedFields": [{"manager": "argocd"}]},
            "spec": {"source": {"repoURL": "https://git.example.com/envs.git"}},
            "status": {"sync": {"status": "Synced", "revision": "abc", "comparedTo": {"big": true}},
                       "health": {"status": "Healthy"}, "resources": [{"kind": "Deployment"}],
                       "operationState": {"phase": "Succeeded", "syncResult": {"revision": "abc", "resources": []}}}
        }))
        .unwrap();
        trim_argo_cd(&mut app);
        assert_eq!(
            app.data,
            json!({"status": {"sync": {"status": "Synced", "revision": "abc"}, "health": {"status": "Healthy"},
                              "operationState": {"phase": "Succeeded", "syncResult": {"revision": "abc"}}}})
        );
        assert_eq!(app.metadata.managed_fields, None);
        assert_eq!(
            sync::argo_cd(&app.data, &["abc".to_owned()]),
            crate::engine::SyncState::Healthy,
            "what is kept is enough to judge"
        );
    }
}
