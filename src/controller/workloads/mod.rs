//! One driver per workload kind. A driver turns the kind's API object into the engine's
//! [`WorkloadView`], says where the pod template's containers are (the server-side-apply
//! body that changes only the images follows from that) and names the permission it
//! needs. Everything else (watches, stores, the image change, RBAC) is written once, here,
//! over every kind.
//!
//! A new kind is one [`WorkloadKind`] variant, one driver file and one arm in [`driver`].

mod cronjob;
mod daemonset;
mod deployment;
mod statefulset;

use std::{collections::BTreeMap, fmt::Debug, marker::PhantomData, sync::Arc};

use futures::{StreamExt, future::BoxFuture, stream::BoxStream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client, Resource,
    core::{ApiResource, NamespaceResourceScope},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::rbac::{Permission, Scope};
use crate::engine::{ContainerImage, WorkloadKind, WorkloadRef, WorkloadView};

/// What one kind contributes.
pub trait Driver: Send + Sync + 'static {
    /// The object as cached: only what [`Driver::view`] reads, decoded straight from
    /// the watch so that nothing else a real API server sends is ever allocated.
    type Object: k8s_openapi::Resource<Scope = NamespaceResourceScope>
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;

    /// The kind.
    const KIND: WorkloadKind;

    /// The resource, as RBAC and the URL path name it (`deployments`).
    const RESOURCE: &'static str = <Self::Object as k8s_openapi::Resource>::URL_PATH_SEGMENT;

    /// The path from the object's root to the pod template's spec, whose `containers`
    /// hold the images.
    const POD_SPEC: &'static [&'static str];

    /// The object as the engine sees it.
    fn view(object: &Self::Object) -> WorkloadView;

    /// Drops what decoding kept but [`Driver::view`] never reads, before the object is
    /// cached.
    fn trim(_object: &mut Self::Object) {}
}

/// A driver with its kind's types erased, so that every kind can be held in one list.
pub trait AnyDriver: Sync {
    /// The kind.
    fn kind(&self) -> WorkloadKind;

    /// The permission the controller needs on this kind in every watched namespace:
    /// read rollouts, set images.
    fn permission(&self) -> Permission;

    /// The kind's API resource (group, version, plural).
    fn api_resource(&self) -> ApiResource;

    /// The path from the object's root to the pod template's spec ([`Driver::POD_SPEC`]).
    fn pod_spec(&self) -> &'static [&'static str];

    /// The server-side-apply body that sets `images` and nothing else.
    fn apply_body(&self, workload: &WorkloadRef, images: &[ContainerImage]) -> Value;

    /// A watch of the kind (in `namespace`, or the whole cluster) feeding a new store;
    /// the stream yields every object the watch touches, and must be polled for the
    /// store to fill.
    fn watch(&self, client: &Client, namespace: Option<&str>) -> (Arc<dyn KindStore>, Touched);
}

/// The workloads a watch touched (changed, appeared, deleted), or its errors.
pub type Touched = BoxStream<'static, Result<WorkloadRef, watcher::Error>>;

/// The driver of `kind`.
pub fn driver(kind: WorkloadKind) -> &'static dyn AnyDriver {
    match kind {
        WorkloadKind::Deployment => &Typed::<deployment::Deployments>(PhantomData),
        WorkloadKind::StatefulSet => &Typed::<statefulset::StatefulSets>(PhantomData),
        WorkloadKind::DaemonSet => &Typed::<daemonset::DaemonSets>(PhantomData),
        WorkloadKind::CronJob => &Typed::<cronjob::CronJobs>(PhantomData),
    }
}

/// Every driver, in [`WorkloadKind::ALL`] order.
pub fn drivers() -> impl Iterator<Item = &'static dyn AnyDriver> {
    WorkloadKind::ALL.iter().map(|kind| driver(*kind))
}

struct Typed<D>(PhantomData<D>);

impl<D: Driver> AnyDriver for Typed<D> {
    fn kind(&self) -> WorkloadKind {
        D::KIND
    }

    fn pod_spec(&self) -> &'static [&'static str] {
        D::POD_SPEC
    }

    fn permission(&self) -> Permission {
        Permission {
            group: <D::Object as k8s_openapi::Resource>::GROUP,
            resource: D::RESOURCE,
            verbs: &["list", "watch", "patch"],
            scope: Scope::Watched,
            why: "read rollouts, set images",
        }
    }

    fn api_resource(&self) -> ApiResource {
        ApiResource::erase::<D::Object>(&())
    }

    fn apply_body(&self, workload: &WorkloadRef, images: &[ContainerImage]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .map(|i| json!({"name": i.container, "image": i.image}))
            .collect();
        let mut template = json!({"containers": containers});
        for field in D::POD_SPEC.iter().skip(1).rev() {
            template = json!({ *field: template });
        }
        let root = D::POD_SPEC.first().copied().unwrap_or("spec");
        json!({
            "apiVersion": <D::Object as k8s_openapi::Resource>::API_VERSION,
            "kind": <D::Object as k8s_openapi::Resource>::KIND,
            "metadata": {"name": workload.name, "namespace": workload.namespace},
            root: template,
        })
    }

    fn watch(&self, client: &Client, namespace: Option<&str>) -> (Arc<dyn KindStore>, Touched) {
        let api: Api<D::Object> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (reader, writer) = reflector::store();
        let touched = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(D::trim)
            .reflect(writer)
            .touched_objects()
            .map(|object| {
                object.map(|o| {
                    let meta = o.meta();
                    WorkloadRef {
                        cluster: None,
                        kind: D::KIND,
                        namespace: meta.namespace.clone().unwrap_or_default(),
                        name: meta.name.clone().unwrap_or_default(),
                    }
                })
            })
            .boxed();
        (Arc::new(Cache::<D>(reader)), touched)
    }
}

/// The cache of one kind, its type erased.
pub trait KindStore: Send + Sync {
    /// The workload `namespace/name`, as the engine sees it, if it exists.
    fn view(&self, namespace: &str, name: &str) -> Option<WorkloadView>;

    /// The cached `metadata.resourceVersion` of `namespace/name`.
    fn resource_version(&self, namespace: &str, name: &str) -> Option<String>;

    /// Whether the store has its initial list (false: its writer is gone).
    fn ready(&self) -> BoxFuture<'static, bool>;
}

struct Cache<D: Driver>(Store<D::Object>);

impl<D: Driver> KindStore for Cache<D> {
    fn view(&self, namespace: &str, name: &str) -> Option<WorkloadView> {
        let object = self.0.get(&ObjectRef::new(name).within(namespace))?;
        Some(D::view(&object))
    }

    fn resource_version(&self, namespace: &str, name: &str) -> Option<String> {
        let object = self.0.get(&ObjectRef::new(name).within(namespace))?;
        object.meta().resource_version.clone()
    }

    fn ready(&self) -> BoxFuture<'static, bool> {
        let store = self.0.clone();
        Box::pin(async move { super::world::ready(&store).await })
    }
}

/// The caches of every kind.
#[derive(Clone, Default)]
pub struct WorkloadStores {
    by_kind: BTreeMap<WorkloadKind, Arc<dyn KindStore>>,
}

impl WorkloadStores {
    /// Watches every kind; the streams must be polled for the stores to fill.
    pub fn watch(client: &Client, namespace: Option<&str>) -> (Self, Vec<Touched>) {
        let mut stores = Self::default();
        let mut streams = Vec::new();
        for driver in drivers() {
            let (store, touched) = driver.watch(client, namespace);
            stores.by_kind.insert(driver.kind(), store);
            streams.push(touched);
        }
        (stores, streams)
    }

    /// The workload `reference` names, as the engine sees it.
    pub fn view(&self, kind: WorkloadKind, namespace: &str, name: &str) -> Option<WorkloadView> {
        self.by_kind.get(&kind)?.view(namespace, name)
    }

    /// The cached `metadata.resourceVersion` of a workload.
    pub fn resource_version(&self, workload: &WorkloadRef) -> Option<String> {
        self.by_kind
            .get(&workload.kind)?
            .resource_version(&workload.namespace, &workload.name)
    }

    /// Whether every kind's store has its initial list.
    pub async fn wait_until_ready(&self) -> bool {
        let all = futures::future::join_all(self.by_kind.values().map(|s| s.ready())).await;
        all.into_iter().all(|ready| ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_driver_of_that_kind() {
        for kind in WorkloadKind::ALL {
            assert_eq!(driver(*kind).kind(), *kind);
        }
    }
}
