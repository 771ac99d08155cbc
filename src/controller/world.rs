//! What the controller knows: one reflector store per kind, kept small by trimming each
//! object to what the engine reads, and how every object maps back to its Pipeline.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::batch::v1::{Job, JobStatus},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::{
    cached_release::CachedRelease,
    clusters::{Clusters, KubeconfigSecret, Reach, Remote},
    observe,
    routes::RouteStore,
    workloads::WorkloadStores,
};
use crate::{
    api::{Approval, Pipeline, Target},
    engine::{
        JobView, Observation, Snapshot, Unreachable, WorkloadKind, WorkloadRef, WorkloadView,
        canary::canary_name, jobs::labels,
    },
};

/// The reflector stores the controller reads the world from.
#[derive(Clone)]
pub struct Stores {
    /// Pipelines.
    pub pipelines: Store<Pipeline>,
    /// Releases (identity, spec and what the engine reads back of their status).
    pub releases: Store<CachedRelease>,
    /// Approvals.
    pub approvals: Store<Approval>,
    /// Target workloads of every kind (only what their drivers read).
    pub workloads: WorkloadStores,
    /// Jobs Greenlight created (trimmed to labels and conditions).
    pub jobs: Store<Job>,
    /// HTTPRoutes, where the Gateway API is served.
    pub routes: RouteStore,
    /// Argo CD Applications and Flux Kustomizations, where served.
    pub sync: super::sync_objects::SyncStores,
}

/// Keeps what identifies an object and drops the rest of its metadata: managed fields
/// and annotations are often larger than the object itself.
fn keep_identity(meta: &mut ObjectMeta, keep_labels: bool) {
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        generation: meta.generation.take(),
        resource_version: meta.resource_version.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        labels: if keep_labels {
            meta.labels.take()
        } else {
            None
        },
        ..ObjectMeta::default()
    };
}

/// Trims a Greenlight object (Pipeline, Approval): its spec and status are read.
pub fn trim_own<K: Resource>(object: &mut K) {
    keep_identity(object.meta_mut(), false);
}

/// Trims a Job to its labels, creation time and conditions.
pub fn trim_job(job: &mut Job) {
    keep_identity(&mut job.metadata, true);
    job.spec = None;
    job.status = job.status.take().map(|s| JobStatus {
        conditions: s.conditions,
        ..JobStatus::default()
    });
}

/// The Pipeline a Release belongs to.
pub fn pipeline_of_release(release: &CachedRelease) -> Option<ObjectRef<Pipeline>> {
    Some(ObjectRef::new(&release.spec.pipeline).within(&release.namespace()?))
}

/// The Pipeline an Approval's Release belongs to, if that Release is known.
pub fn pipeline_of_approval(
    releases: &Store<CachedRelease>,
    approval: &Approval,
) -> Option<ObjectRef<Pipeline>> {
    let namespace = approval.namespace()?;
    let release = releases.get(&ObjectRef::new(&approval.spec.release).within(&namespace))?;
    pipeline_of_release(&release)
}

/// The Pipeline that created a Job, from its labels.
pub fn pipeline_of_job(job: &Job) -> Option<ObjectRef<Pipeline>> {
    let labels = job.metadata.labels.as_ref()?;
    let name = labels.get(labels::PIPELINE)?;
    // Jobs in the Pipeline's namespace may predate the namespace label.
    let namespace = labels
        .get(labels::PIPELINE_NAMESPACE)
        .cloned()
        .or_else(|| job.namespace())?;
    Some(ObjectRef::new(name).within(&namespace))
}

/// Where an environment of a Pipeline in `namespace` runs, if in another cluster.
pub fn remote_of(namespace: &str, target: &Target) -> Option<Remote> {
    let secret = &target.cluster.as_ref()?.secret_ref;
    Some(Remote {
        secret: KubeconfigSecret {
            namespace: namespace.to_owned(),
            name: secret.name.clone(),
            key: secret.key().to_owned(),
        },
        namespace: target.namespace.clone(),
    })
}

/// Every other cluster namespace a Pipeline's environments run in.
pub fn remotes_of(pipeline: &Pipeline) -> BTreeSet<Remote> {
    let namespace = pipeline.metadata.namespace.as_deref().unwrap_or_default();
    pipeline
        .spec
        .environments
        .iter()
        .filter_map(|e| remote_of(namespace, &e.target))
        .collect()
}

/// The Pipelines with an environment of the controller's own cluster that `uses` says
/// depends on an object.
fn pipelines_where(
    pipelines: &Store<Pipeline>,
    uses: impl Fn(&crate::api::Environment) -> bool,
) -> Vec<ObjectRef<Pipeline>> {
    pipelines
        .state()
        .iter()
        .filter(|p| {
            p.spec
                .environments
                .iter()
                .any(|e| e.target.cluster.is_none() && uses(e))
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// The Pipelines that deploy to a workload of the controller's own cluster, or to the
/// target Deployment a canary stands beside.
pub fn pipelines_of_workload(
    pipelines: &Store<Pipeline>,
    workload: &WorkloadRef,
) -> Vec<ObjectRef<Pipeline>> {
    pipelines_where(pipelines, |e| {
        e.target.namespace == workload.namespace
            && e.target.workloads().any(|w| {
                // A target, or the canary beside one (its readiness ends a step's wait).
                w.kind == workload.kind
                    && (w.name == workload.name
                        || (w.kind == WorkloadKind::Deployment
                            && crate::engine::canary::canary_name(w.name) == workload.name))
            })
    })
}

/// The Pipelines whose canary traffic goes through the HTTPRoute `namespace/name` of the
/// controller's own cluster.
pub fn pipelines_of_route(
    pipelines: &Store<Pipeline>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Pipeline>> {
    pipelines_where(pipelines, |e| {
        e.target.namespace == namespace
            && e.rollout
                .as_ref()
                .and_then(|r| r.gateway_api.as_ref())
                .is_some_and(|g| g.http_route == name)
    })
}

/// The Pipelines with a GitOps environment that the Argo CD Application (`argo_cd`) or
/// Flux Kustomization `namespace/name` applies.
pub fn pipelines_of_sync_object(
    pipelines: &Store<Pipeline>,
    argo_cd: bool,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Pipeline>> {
    pipelines_where(pipelines, |e| {
        let Some(git) = &e.target.git else {
            return false;
        };
        let object = if argo_cd {
            git.argo_cd_application.as_ref()
        } else {
            git.flux_kustomization.as_ref()
        };
        object.is_some_and(|o| o.namespace == namespace && o.name == name)
    })
}

/// Whether `store` has its initial list (false: its writer is gone).
///
/// kube's `Store::wait_until_ready` wakes only the last task that waited: the Controller
/// waits on the Pipelines store too, and whichever of the two waited first could sleep
/// forever (seen as a controller that never became ready, about once in ten starts under
/// load). Asking again every 50 ms is correct either way: the store remembers it is ready
/// once any waiter has seen it.
pub async fn ready<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = store.wait_until_ready();
        match tokio::time::timeout(std::time::Duration::from_millis(50), wait).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}

impl Stores {
    /// Whether every store has its initial list.
    pub async fn wait_until_ready(&self) -> bool {
        let (a, b, c, d, e, f, g) = futures::join!(
            ready(&self.pipelines),
            ready(&self.releases),
            ready(&self.approvals),
            self.workloads.wait_until_ready(),
            ready(&self.jobs),
            self.routes.wait_until_ready(),
            self.sync.wait_until_ready(),
        );
        a && b && c && d && e && f && g
    }

    /// Everything one decision about `pipeline` reads, at `now`: from these stores, and
    /// for environments in other clusters from their connections in `clusters`.
    pub fn snapshot(
        &self,
        pipeline: &Pipeline,
        now: jiff::Timestamp,
        observations: Vec<Observation>,
        clusters: &Clusters,
    ) -> Snapshot {
        let view = observe::pipeline(pipeline);
        let (namespace, name) = (view.namespace.clone(), view.name.clone());
        let mut releases: Vec<_> = self
            .releases
            .state_filter(|r| {
                r.spec.pipeline == name && r.metadata.namespace.as_deref() == Some(&namespace)
            })
            .iter()
            .map(|r| observe::release(r))
            .collect();
        releases.sort_by(|a, b| a.name.cmp(&b.name));
        let release_names: BTreeSet<&str> = releases.iter().map(|r| r.name.as_str()).collect();
        let mut approvals: Vec<_> = self
            .approvals
            .state_filter(|a| {
                a.metadata.namespace.as_deref() == Some(&namespace)
                    && release_names.contains(a.spec.release.as_str())
            })
            .iter()
            .map(|a| observe::approval(a))
            .collect();
        approvals.sort_by(|a, b| a.name.cmp(&b.name));
        let ours = ObjectRef::from_obj(pipeline);
        let mut workloads = Vec::new();
        let mut jobs: Vec<_> = self
            .jobs
            .state_filter(|j| pipeline_of_job(j).as_ref() == Some(&ours))
            .iter()
            .map(|j| observe::job(j))
            .collect();
        let mut unreachable = Vec::new();
        let mut routes = Vec::new();
        let mut remotes_seen = BTreeSet::new();
        for env in &pipeline.spec.environments {
            let target = &env.target;
            let route = env.rollout.as_ref().and_then(|r| r.gateway_api.as_ref());
            let Some(remote) = remote_of(&namespace, target) else {
                workloads.extend(observed_targets(&self.workloads, target));
                routes.extend(
                    route.and_then(|r| self.routes.view(&target.namespace, &r.http_route, None)),
                );
                continue;
            };
            let cluster = remote.secret.name.clone();
            let Some(stores) = clusters.stores(&remote) else {
                let reason = match clusters.reach(&remote) {
                    Some(Reach::Unreachable { error, .. }) => error.to_string(),
                    _ => "connecting".to_owned(),
                };
                if remotes_seen.insert(remote.clone()) {
                    unreachable.push(Unreachable {
                        cluster,
                        namespace: target.namespace.clone(),
                        reason,
                    });
                }
                continue;
            };
            routes.extend(route.and_then(|r| {
                stores
                    .routes
                    .view(&target.namespace, &r.http_route, Some(&cluster))
            }));
            workloads.extend(
                observed_targets(&stores.workloads, target)
                    .into_iter()
                    .map(|view| WorkloadView {
                        cluster: Some(cluster.clone()),
                        ..view
                    }),
            );
            if remotes_seen.insert(remote.clone()) {
                jobs.extend(
                    stores
                        .jobs
                        .state_filter(|j| pipeline_of_job(j).as_ref() == Some(&ours))
                        .iter()
                        .map(|j| JobView {
                            cluster: Some(cluster.clone()),
                            ..observe::job(j)
                        }),
                );
            }
        }
        jobs.sort_by(|a, b| {
            (&a.cluster, &a.namespace, &a.name).cmp(&(&b.cluster, &b.namespace, &b.name))
        });
        Snapshot {
            now,
            pipeline: view,
            releases,
            approvals,
            workloads,
            jobs,
            routes,
            observations,
            unreachable,
            // The repositories are read by `repos`, which needs the checked spec.
            git: Vec::new(),
        }
    }
}

/// The workloads `target` names, as cached, and the canary beside each Deployment among
/// them while one exists (in a canary step, or garbage to delete: the engine tells).
fn observed_targets(stores: &WorkloadStores, target: &Target) -> Vec<WorkloadView> {
    target
        .workloads()
        .flat_map(|w| {
            let canary = (w.kind == WorkloadKind::Deployment)
                .then(|| stores.view(w.kind, &target.namespace, &canary_name(w.name)))
                .flatten();
            stores
                .view(w.kind, &target.namespace, w.name)
                .into_iter()
                .chain(canary)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_trimmed_job_keeps_its_labels_and_outcome() {
        let mut j: Job = serde_json::from_value(json!({
            "metadata": {"name": "t", "namespace": "shop", "labels": {
                "greenlight.dev/pipeline": "shop", "greenlight.dev/pipeline-namespace": "ci"}},
            "spec": {"template": {"spec": {"containers": [{"name": "t", "image": "t"}]}}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
        }))
        .unwrap();
        let before = observe::job(&j);
        trim_job(&mut j);
        assert_eq!(observe::job(&j), before);
        assert!(j.spec.is_none());
        assert_eq!(
            pipeline_of_job(&j),
            Some(ObjectRef::new("shop").within("ci")),
            "the Job maps to its Pipeline's namespace, not its own"
        );
    }
}
