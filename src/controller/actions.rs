//! Executes the engine's actions and writes statuses against the API server: server-side
//! apply with one fixed field manager, every call bounded by a timeout, idempotent answers
//! ("already exists", "not found") taken as success.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        batch::v1::{Job, JobSpec},
        core::v1::Pod,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::ApiResource,
};
use serde_json::{Value, json};

use crate::{
    api::{
        API_VERSION, Approval, ApprovalStatus, Pipeline, PipelineStatus, Release, ReleaseStatus,
    },
    controller::leader::Leadership,
    engine::{
        Action, CanaryRoute, ContainerImage, JobRequest, RouteRef, WorkloadRef, canary::canary_name,
    },
    metrics::Metrics,
};

/// The field manager of every write: Greenlight owns exactly the fields it applies.
pub const FIELD_MANAGER: &str = "greenlight";

/// How long one API call may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a write failed. Variant names are the `result` label of reconcile metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with an error.
    #[error("the API server refused to {what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The answer.
        #[source]
        source: kube::Error,
    },
    /// No answer in time.
    #[error("{what}: no answer within {after:?}")]
    Timeout {
        /// What was being done.
        what: String,
        /// The time limit.
        after: Duration,
    },
    /// This replica no longer holds the lease: it must not write anything.
    #[error("not the leader any more; {what} was not done")]
    NotLeader {
        /// What would have been done.
        what: String,
    },
    /// The action goes to another cluster that is not connected now.
    #[error("{what}: cluster {cluster} is not connected")]
    NotConnected {
        /// What would have been done.
        what: String,
        /// The cluster.
        cluster: String,
    },
    /// The engine asked for a Job whose template is not a valid JobSpec.
    #[error("the Job {name} has an invalid template: {source}")]
    InvalidJob {
        /// The Job's name.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A commit to an environment's repository failed.
    #[error("cannot commit to the repository of {environment}: {source}")]
    Git {
        /// The environment.
        environment: String,
        /// Why.
        #[source]
        source: crate::gitops::repo::GitError,
    },
    /// The target Deployment cannot have a canary (it lacks a container the release sets).
    #[error("cannot {what}: {reason}")]
    InvalidCanary {
        /// What was being done.
        what: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The metric label for this error.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Api { .. } => "api_error",
            Self::Timeout { .. } => "timeout",
            Self::InvalidJob { .. } => "invalid_job",
            Self::InvalidCanary { .. } => "invalid_canary",
            Self::NotLeader { .. } => "not_leader",
            Self::NotConnected { .. } => "not_connected",
            Self::Git { .. } => "git_error",
        }
    }

    /// Whether retrying can help (it cannot for an invalid template, and a replica that
    /// lost the lease waits to win it back instead).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Git { source, .. } => source.is_transient(),
            _ => !matches!(
                self,
                Self::InvalidJob { .. } | Self::InvalidCanary { .. } | Self::NotLeader { .. }
            ),
        }
    }
}

fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The metric label of an API call's result.
fn result_label(result: &Result<impl Sized, kube::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => match api_code(e) {
            Some(404) => "not_found",
            Some(409) => "conflict",
            Some(400..=499) => "client_error",
            Some(_) => "server_error",
            None => "error",
        },
    }
}

/// A kind besides the Pipeline whose status every decision may rewrite.
pub trait DecidedStatus:
    kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    /// Its status.
    type Status: serde::Serialize + Sync;
    /// The status subresource, as counted in `greenlight_api_requests_total`.
    const STATUS_RESOURCE: &'static str;
}

impl DecidedStatus for Release {
    type Status = ReleaseStatus;
    const STATUS_RESOURCE: &'static str = "releases/status";
}

impl DecidedStatus for Approval {
    type Status = ApprovalStatus;
    const STATUS_RESOURCE: &'static str = "approvals/status";
}

/// Writes for one Pipeline: its actions, its status and its Releases' statuses.
pub struct Executor {
    client: Client,
    /// Clients of other clusters, by (cluster, target namespace).
    remotes: BTreeMap<(String, String), Client>,
    owner: OwnerReference,
    namespace: String,
    timeout: Duration,
    metrics: Option<Metrics>,
    leadership: Option<Leadership>,
    /// The repositories of environments in GitOps mode, which commits go to.
    repos: Option<super::repos::Repositories>,
}

impl Executor {
    /// An executor for `pipeline`, which owns the Jobs it creates.
    pub fn new(client: Client, pipeline: &Pipeline) -> Self {
        let owner = OwnerReference {
            api_version: API_VERSION.into(),
            kind: "Pipeline".into(),
            name: pipeline.metadata.name.clone().unwrap_or_default(),
            uid: pipeline.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Self {
            client,
            remotes: BTreeMap::new(),
            owner,
            namespace: pipeline.metadata.namespace.clone().unwrap_or_default(),
            timeout: API_TIMEOUT,
            metrics: None,
            leadership: None,
            repos: None,
        }
    }

    /// Commits to the repositories of environments in GitOps mode through `repos`.
    pub fn with_repositories(mut self, repos: super::repos::Repositories) -> Self {
        self.repos = Some(repos);
        self
    }

    /// Acts in other clusters through these clients, by (cluster, target namespace).
    pub fn with_remotes(mut self, remotes: BTreeMap<(String, String), Client>) -> Self {
        self.remotes = remotes;
        self
    }

    /// The client of `namespace` in `cluster` (`None`: the controller's own).
    fn client_in(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        what: impl Fn() -> String,
    ) -> Result<Client, Error> {
        let Some(cluster) = cluster else {
            return Ok(self.client.clone());
        };
        self.remotes
            .get(&(cluster.to_owned(), namespace.to_owned()))
            .cloned()
            .ok_or_else(|| Error::NotConnected {
                what: what(),
                cluster: cluster.to_owned(),
            })
    }

    /// Counts every API call in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Writes nothing unless `leadership` says this replica leads, checked before each call.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// Makes one API call: only while leading, bounded by the timeout, and counted.
    async fn call<T>(
        &self,
        (verb, resource): (&'static str, &'static str),
        what: impl Fn() -> String,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<Result<T, kube::Error>, Error> {
        if self.leadership.as_ref().is_some_and(|l| !l.is_leading()) {
            return Err(Error::NotLeader { what: what() });
        }
        let answer = tokio::time::timeout(self.timeout, call).await;
        if let Some(metrics) = &self.metrics {
            let result = answer.as_ref().map_or("timeout", result_label);
            metrics.api_request(verb, resource, result);
        }
        answer.map_err(|_| Error::Timeout {
            what: what(),
            after: self.timeout,
        })
    }

    /// Takes one action.
    pub async fn apply(&self, action: &Action) -> Result<(), Error> {
        match action {
            Action::SetImages { workload, images } => {
                let driver = super::workloads::driver(workload.kind);
                // Only the images: server-side apply then owns nothing else of the workload.
                let patch = driver.apply_body(workload, images);
                let what = || format!("set the images of {workload}");
                let client =
                    self.client_in(workload.cluster.as_deref(), &workload.namespace, what)?;
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client, &workload.namespace, &driver.api_resource());
                let params = PatchParams::apply(FIELD_MANAGER).force();
                self.call(
                    ("patch", driver.permission().resource),
                    what,
                    api.patch(&workload.name, &params, &Patch::Apply(&patch)),
                )
                .await?
                .map_err(|source| Error::Api {
                    what: what(),
                    source,
                })?;
                Ok(())
            }
            Action::SetCanary {
                stable,
                images,
                weight,
            } => self.set_canary(stable, images, *weight).await,
            Action::DeleteCanary { stable, route } => {
                if let Some(route) = route {
                    self.withdraw_traffic(route).await?;
                }
                let name = canary_name(&stable.name);
                let what = || format!("delete canary Deployment {}/{name}", stable.namespace);
                let client = self.client_in(stable.cluster.as_deref(), &stable.namespace, what)?;
                let api: Api<Deployment> = Api::namespaced(client, &stable.namespace);
                self.delete(("delete", "deployments"), what, api, &name)
                    .await
            }
            Action::SetRouteWeights {
                route,
                stable_service,
                canary_service,
                weight,
            } => {
                self.set_route_weights(route, stable_service, canary_service, *weight)
                    .await
            }
            Action::Commit(request) => {
                let what = || format!("commit to the repository of {}", request.environment);
                if self.leadership.as_ref().is_some_and(|l| !l.is_leading()) {
                    return Err(Error::NotLeader { what: what() });
                }
                let Some(repos) = &self.repos else {
                    return Err(Error::NotConnected {
                        what: what(),
                        cluster: "git".into(),
                    });
                };
                let pipeline = kube::runtime::reflector::ObjectRef::new(&self.owner.name)
                    .within(&self.namespace);
                repos
                    .commit(&pipeline, request)
                    .await
                    .map_err(|source| Error::Git {
                        environment: request.environment.clone(),
                        source,
                    })
            }
            Action::CreateJob(request) => self.create_job(request).await,
            Action::DeleteJob {
                cluster,
                namespace,
                name,
            } => {
                let what = || format!("delete Job {namespace}/{name}");
                let client = self.client_in(cluster.as_deref(), namespace, what)?;
                let api: Api<Job> = Api::namespaced(client, namespace);
                self.delete(("delete", "jobs"), what, api, name).await
            }
        }
    }

    /// Deletes `name` in the background; one already gone is fine.
    async fn delete<K>(
        &self,
        permission: (&'static str, &'static str),
        what: impl Fn() -> String,
        api: Api<K>,
        name: &str,
    ) -> Result<(), Error>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match self
            .call(
                permission,
                &what,
                api.delete(name, &DeleteParams::background()),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(source) => Err(Error::Api {
                what: what(),
                source,
            }),
        }
    }

    /// Applies the canary beside `stable`, built from the live stable Deployment.
    async fn set_canary(
        &self,
        stable: &WorkloadRef,
        images: &[ContainerImage],
        weight: u32,
    ) -> Result<(), Error> {
        let what = || format!("set the canary of {stable} to {weight}%");
        let client = self.client_in(stable.cluster.as_deref(), &stable.namespace, what)?;
        let api: Api<Deployment> = Api::namespaced(client, &stable.namespace);
        let live = self
            .call(("get", "deployments"), what, api.get(&stable.name))
            .await?
            .map_err(|source| Error::Api {
                what: what(),
                source,
            })?;
        let canary = super::canary::manifest(&live, images, weight).map_err(|reason| {
            Error::InvalidCanary {
                what: what(),
                reason,
            }
        })?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.call(
            ("patch", "deployments"),
            what,
            api.patch(&canary_name(&stable.name), &params, &Patch::Apply(&canary)),
        )
        .await?
        .map_err(|source| Error::Api {
            what: what(),
            source,
        })?;
        Ok(())
    }

    /// Sets the two backends' weights of `route` by a JSON patch built from the live route
    /// (see [`super::routes`] for why not server-side apply).
    async fn set_route_weights(
        &self,
        route: &RouteRef,
        stable: &str,
        canary: &str,
        weight: u32,
    ) -> Result<(), Error> {
        let what = || format!("send {weight}% of {route} to Service {canary}");
        let (api, live) = self.live_route(route, what).await?;
        self.patch_weights(&api, route, &live, (stable, canary), weight, what)
            .await
    }

    /// Makes sure the live route sends the canary nothing before its canary goes: a share
    /// the caches did not show yet (our own change in flight) is sent back to the stable
    /// Service. A route that is gone, or names not both Services, sends it nothing.
    async fn withdraw_traffic(&self, split: &CanaryRoute) -> Result<(), Error> {
        let CanaryRoute {
            route,
            stable_service,
            canary_service,
        } = split;
        let what = || format!("send {route}'s traffic back to Service {stable_service}");
        let (api, live) = match self.live_route(route, what).await {
            Ok(found) => found,
            Err(Error::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => return Ok(()),
            Err(error) => return Err(error),
        };
        let cached: super::routes::CachedRoute =
            serde_json::from_value(live.clone()).map_err(|e| Error::InvalidCanary {
                what: what(),
                reason: e.to_string(),
            })?;
        let shares = super::routes::view(&cached, route.cluster.as_deref())
            .split(stable_service, canary_service);
        if shares.iter().all(|&(_, canary)| canary == 0) {
            return Ok(());
        }
        self.patch_weights(
            &api,
            route,
            &live,
            (stable_service, canary_service),
            0,
            what,
        )
        .await
    }

    /// The route as the API server has it now, and its API.
    async fn live_route(
        &self,
        route: &RouteRef,
        what: impl Fn() -> String + Copy,
    ) -> Result<(Api<DynamicObject>, Value), Error> {
        let client = self.client_in(route.cluster.as_deref(), &route.namespace, what)?;
        let resource = ApiResource::erase::<super::routes::CachedRoute>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(client, &route.namespace, &resource);
        let live = self
            .call(("get", "httproutes"), what, api.get(&route.name))
            .await?
            .map_err(|source| Error::Api {
                what: what(),
                source,
            })?;
        let live = serde_json::to_value(&live).map_err(|e| Error::InvalidCanary {
            what: what(),
            reason: e.to_string(),
        })?;
        Ok((api, live))
    }

    /// The JSON patch of [`super::routes::weight_patch`] on `live`, tested against its
    /// version: a route changed since fails (422) and the next decision tries again.
    async fn patch_weights(
        &self,
        api: &Api<DynamicObject>,
        route: &RouteRef,
        live: &Value,
        (stable, canary): (&str, &str),
        weight: u32,
        what: impl Fn() -> String + Copy,
    ) -> Result<(), Error> {
        let patch = super::routes::weight_patch(live, stable, canary, weight)
            .and_then(|ops| serde_json::from_value(ops).map_err(|e| e.to_string()))
            .map_err(|reason| Error::InvalidCanary {
                what: what(),
                reason,
            })?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.call(
            ("patch", "httproutes"),
            what,
            api.patch(&route.name, &params, &Patch::<()>::Json(patch)),
        )
        .await?
        .map_err(|source| Error::Api {
            what: what(),
            source,
        })?;
        Ok(())
    }

    async fn create_job(&self, request: &JobRequest) -> Result<(), Error> {
        let spec: JobSpec =
            serde_json::from_value(request.spec.clone()).map_err(|source| Error::InvalidJob {
                name: request.name.clone(),
                source,
            })?;
        let job = Job {
            metadata: ObjectMeta {
                name: Some(request.name.clone()),
                namespace: Some(request.namespace.clone()),
                labels: Some(request.labels.clone()),
                // Owned (and garbage-collected with the Pipeline) where an owner
                // reference can reach: the Pipeline's own namespace of its own cluster.
                owner_references: (request.cluster.is_none()
                    && request.namespace == self.namespace)
                    .then(|| vec![self.owner.clone()]),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        };
        let what = || format!("create Job {}/{}", request.namespace, request.name);
        let client = self.client_in(request.cluster.as_deref(), &request.namespace, what)?;
        let api: Api<Job> = Api::namespaced(client, &request.namespace);
        match self
            .call(
                ("create", "jobs"),
                what,
                api.create(&PostParams::default(), &job),
            )
            .await?
        {
            Ok(_) => Ok(()),
            // Deterministic names: it exists because an earlier decision created it.
            Err(e) if api_code(&e) == Some(409) => Ok(()),
            Err(source) => Err(Error::Api {
                what: what(),
                source,
            }),
        }
    }

    /// The termination message a finished Job's Pod left (see
    /// [`observe::termination_message`](super::observe::termination_message)): what a
    /// test Job such as `greenlight loadtest` reports, for the status. One list of the
    /// Job's Pods by the label Kubernetes puts on them.
    pub async fn job_termination_message(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        job: &str,
    ) -> Result<Option<String>, Error> {
        let what = || format!("list the Pods of Job {namespace}/{job}");
        let client = self.client_in(cluster, namespace, what)?;
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
        match self.call(("list", "pods"), what, api.list(&params)).await? {
            Ok(pods) => Ok(super::observe::termination_message(&pods.items)),
            Err(source) => Err(Error::Api {
                what: what(),
                source,
            }),
        }
    }

    /// Writes the Pipeline's status (server-side apply on the status subresource).
    pub async fn write_pipeline_status(
        &self,
        name: &str,
        status: &PipelineStatus,
    ) -> Result<(), Error> {
        self.apply_status::<Pipeline>("pipelines/status", name, status, false)
            .await
    }

    /// Writes the status of a Release or an Approval; one deleted meanwhile is not an
    /// error.
    pub async fn write_status<K: DecidedStatus>(
        &self,
        name: &str,
        status: &K::Status,
    ) -> Result<(), Error> {
        self.apply_status::<K>(K::STATUS_RESOURCE, name, status, true)
            .await
    }

    async fn apply_status<K>(
        &self,
        resource: &'static str,
        name: &str,
        status: &impl serde::Serialize,
        gone_is_fine: bool,
    ) -> Result<(), Error>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let kind = K::kind(&());
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        let patch = json!({"apiVersion": API_VERSION, "kind": kind, "status": status});
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let what = || format!("write the status of {kind} {}/{name}", self.namespace);
        match self
            .call(
                ("patch", resource),
                what,
                api.patch_status(name, &params, &Patch::Apply(&patch)),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(e) if gone_is_fine && api_code(&e) == Some(404) => Ok(()),
            Err(source) => Err(Error::Api {
                what: what(),
                source,
            }),
        }
    }
}
