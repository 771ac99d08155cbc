//! Wires the daemon together: watches feeding reflector stores, the kube-runtime
//! `Controller` reconciling Pipelines, the probe scheduler, leader election and the
//! metrics server, and a graceful shutdown that hands the Lease over.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api, Client, Resource,
    runtime::{
        Controller, WatchStreamExt, controller,
        events::Reporter,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::{
    cached_release::CachedRelease,
    clusters::Clusters,
    leader::{Elector, Leadership, LeaseConfig},
    probes::Prober,
    reconcile::{Context, error_policy, reconcile},
    repos::Repositories,
    routes::RouteStore,
    selector::LabelSelector,
    sent,
    server::{self, Health},
    sync_objects::SyncStores,
    workloads::WorkloadStores,
    world::{self, Stores},
};
use crate::{
    api::{Approval, Pipeline},
    checks::HttpClient,
    engine::jobs::labels,
    metrics::Metrics,
};

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only this namespace (Pipelines, Releases, Approvals, targets and Jobs all
    /// live in it); otherwise the whole cluster.
    pub namespace: Option<String>,
    /// Act only on the Pipelines with these labels (a shard); their Releases and
    /// Approvals follow them. Otherwise every Pipeline in scope.
    pub selector: Option<LabelSelector>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// The Lease to elect a leader with; `None` runs as the only replica.
    pub leader_election: Option<LeaseConfig>,
    /// The name this replica reports Events as.
    pub instance: String,
    /// How many Pipelines are reconciled at once. Bounds the memory of a wave (1,000
    /// Pipelines at start-up) without slowing one Pipeline's reaction.
    pub concurrency: u16,
    /// Where the repositories of GitOps environments are cached, and how often read.
    pub git: super::repos::GitOptions,
    /// How often the API server is asked again for a CRD's kind it did not serve
    /// (HTTPRoutes, Argo CD Applications, Flux Kustomizations): installed after the
    /// controller started, they are watched from then on.
    pub rediscover: Duration,
}

/// The default of [`Options::concurrency`].
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics port could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The probes' HTTP client could not load the system's CA certificates.
    #[error("could not set up the probes' HTTP client: {0}")]
    Probes(#[source] std::io::Error),
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch of `K` (trimmed by `trim` before it is stored) feeding a store; the stream of
/// touched objects drives the store and the Controller's triggers.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
) -> (
    reflector::Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(trim)
        .reflect(writer);
    (reader, stream)
}

/// (namespace, name) of an object.
fn key_of<K: Resource>(object: &K) -> (&str, &str) {
    let meta = object.meta();
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Runs the daemon until `shutdown` turns true.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let listener = server::bind(options.metrics_addr)
        .await
        .map_err(|source| Error::Listen {
            addr: options.metrics_addr,
            source,
        })?;
    run_serving(client, options, listener, shutdown).await
}

/// [`run`], serving `/metrics`, `/healthz` and `/readyz` on `listener` (already bound,
/// so that a caller that asked for port 0 knows the port).
pub async fn run_serving(
    client: Client,
    options: Options,
    listener: tokio::net::TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let addr = listener.local_addr().unwrap_or(options.metrics_addr);
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(server::serve(
        listener,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));

    let leadership = match &options.leader_election {
        Some(_) => Leadership::standby(),
        None => Leadership::always(),
    };
    let elector = options.leader_election.clone().map(|config| {
        tokio::spawn(Elector::new(client.clone(), config, leadership.clone()).run(shutdown.clone()))
    });

    let ns = options.namespace.as_deref();
    // A shard watches only its Pipelines; a Pipeline relabelled out of the shard leaves
    // the watch as a deletion. Releases, Approvals and targets are watched whole: a
    // Release event for another shard's Pipeline maps to a Pipeline this store does not
    // hold, and the Controller reconciles only the ones it holds.
    let pipeline_config = match &options.selector {
        Some(selector) => watcher::Config::default().labels(selector.as_str()),
        None => watcher::Config::default(),
    };
    let (pipelines, pipeline_events) = reflect(
        api::<Pipeline>(&client, ns),
        pipeline_config,
        world::trim_own,
    );
    let (releases, release_events) = reflect(
        api::<CachedRelease>(&client, ns),
        watcher::Config::default(),
        |_| {},
    );
    let (approvals, approval_events) = reflect(
        api::<Approval>(&client, ns),
        watcher::Config::default(),
        world::trim_own,
    );
    let (workloads, workload_events) = WorkloadStores::watch(&client, ns);
    let (jobs, job_events) = reflect(
        api::<Job>(&client, ns),
        watcher::Config::default().labels(&format!("{}=greenlight", labels::MANAGED_BY)),
        world::trim_job,
    );
    let (routes, route_events) = RouteStore::watch(&client, ns, options.rediscover);
    let (sync, argo_cd_events, flux_events) = SyncStores::watch(&client, ns, options.rediscover);
    let stores = Stores {
        pipelines: pipelines.clone(),
        releases: releases.clone(),
        approvals,
        workloads,
        jobs,
        routes,
        sync,
    };

    let (cluster_tx, mut cluster_rx) = mpsc::unbounded_channel::<ObjectRef<Pipeline>>();
    let clusters =
        Arc::new(Clusters::new(client.clone(), cluster_tx).with_metrics(metrics.clone()));
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<ObjectRef<Pipeline>>();
    let prober = Prober::new(HttpClient::new().map_err(Error::Probes)?, probe_tx);
    let reporter = Reporter {
        controller: "greenlight".into(),
        instance: Some(options.instance.clone()),
    };
    let (repo_tx, mut repo_rx) = mpsc::unbounded_channel::<ObjectRef<Pipeline>>();
    let repos = Repositories::new(
        client.clone(),
        clusters.clone(),
        stores.sync.clone(),
        options.git.clone(),
        repo_tx,
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        stores.clone(),
        metrics,
        reporter,
        prober.clone(),
        leadership.clone(),
        clusters,
        repos,
    ));

    // Until every store has its first full list, a decision would see part of the world
    // (Pipelines without their Releases or Deployments) and write a wrong status: nothing
    // is decided before, and everything is reconciled once, when the last store syncs.
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (stores, health, ctx) = (stores.clone(), health.clone(), ctx.clone());
        tokio::spawn(async move {
            if stores.wait_until_ready().await {
                tracing::info!("caches synced; ready");
                ctx.set_synced();
                health.set_synced();
                let _ = synced_tx.send(());
            }
        });
    }
    let synced = futures::stream::once(synced_rx).filter_map(|r| async move { r.ok() });

    // A deleted Pipeline's canaries go, then its probes stop.
    let forget = ctx.clone();
    let pipeline_objects = pipeline_events
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(p) = event {
                let (ctx, pipeline) = (forget.clone(), p.clone());
                tokio::spawn(async move {
                    ctx.clean_up_after(&pipeline).await;
                    ctx.forget(&ObjectRef::from_obj(&pipeline));
                });
            }
        })
        .applied_objects();

    // Elected: reconcile everything. Deposed: stop probing at once, and stop reporting
    // environments (the new leader does).
    let gained = futures::stream::unfold(
        (leadership.subscribe(), prober.clone(), ctx.metrics.clone()),
        |(mut elected, probes, metrics)| async move {
            loop {
                elected.changed().await.ok()?;
                if *elected.borrow_and_update() {
                    return Some(((), (elected, probes, metrics)));
                }
                probes.stop_all();
                metrics.forget_environments();
            }
        },
    );
    let probe_results = futures::stream::poll_fn(move |cx| probe_rx.poll_recv(cx));
    // Another cluster connected, lost, or changed what a Pipeline targets there.
    let cluster_changes = futures::stream::poll_fn(move |cx| cluster_rx.poll_recv(cx));
    // A repository read that changed (a new head, Argo CD or Flux at another revision).
    let repo_changes = futures::stream::poll_fn(move |cx| repo_rx.poll_recv(cx));

    // A deleted Release's or Approval's pending status write is forgotten, and so is a
    // Release's once the store shows it.
    let (forget_release, forget_approval) = (ctx.clone(), ctx.clone());
    let release_events = release_events.inspect_ok(move |event| match event {
        watcher::Event::Delete(r) => forget_release.unseen_releases.forget(key_of(r)),
        watcher::Event::Apply(r) => forget_release
            .unseen_releases
            .seen(key_of(r), r.status_fingerprint()),
        _ => {}
    });
    let approval_events = approval_events.inspect_ok(move |event| {
        if let watcher::Event::Delete(a) = event {
            forget_approval.unseen_approvals.forget(key_of(a));
        }
    });
    // An image change or Job creation in flight is forgotten once the store shows its
    // object again (or its deletion): from then on the store answers. A touched workload
    // reconciles every Pipeline that deploys to it.
    let (forget_workload, forget_job) = (ctx.clone(), ctx.clone());
    let pipelines_for_workloads = pipelines.clone();
    let workload_triggers = futures::stream::select_all(workload_events)
        .filter_map(|touched| async move {
            touched
                .inspect_err(|error| tracing::warn!(%error, "a workload watch failed; it retries"))
                .ok()
        })
        .flat_map(move |workload| {
            let key = sent::workload_key(&workload);
            forget_workload.unseen_actions.forget((&key.0, &key.1));
            futures::stream::iter(world::pipelines_of_workload(
                &pipelines_for_workloads,
                &workload,
            ))
        });
    let job_events = job_events.inspect_ok(move |event| {
        if let watcher::Event::Apply(j) | watcher::Event::Delete(j) = event {
            let (namespace, name) = key_of(j);
            let key = sent::job_key(namespace, name);
            forget_job.unseen_actions.forget((&key.0, &key.1));
        }
    });
    // A touched HTTPRoute reconciles every Pipeline whose canary traffic it carries.
    let pipelines_for_routes = pipelines.clone();
    let route_triggers = route_events
        .filter_map(|touched| async move {
            touched
                .inspect_err(
                    |error| tracing::warn!(%error, "the HTTPRoute watch failed; it retries"),
                )
                .ok()
        })
        .flat_map(move |(namespace, name)| {
            futures::stream::iter(world::pipelines_of_route(
                &pipelines_for_routes,
                &namespace,
                &name,
            ))
        });
    // A touched Argo CD Application or Flux Kustomization reconciles every Pipeline whose
    // GitOps environment it applies.
    let pipelines_for_argo_cd = pipelines.clone();
    let pipelines_for_flux = pipelines.clone();
    let sync_triggers = futures::stream::select(
        argo_cd_events.map(move |touched| (touched, true, pipelines_for_argo_cd.clone())),
        flux_events.map(move |touched| (touched, false, pipelines_for_flux.clone())),
    )
    .filter_map(|(touched, argo_cd, pipelines)| async move {
        let (namespace, name) = touched
            .inspect_err(|error| tracing::warn!(%error, "a sync object watch failed; it retries"))
            .ok()?;
        Some(world::pipelines_of_sync_object(
            &pipelines, argo_cd, &namespace, &name,
        ))
    })
    .flat_map(futures::stream::iter);
    let releases_for_approvals = releases.clone();
    let mut stopping = shutdown.clone();
    let controller = Controller::for_stream(pipeline_objects, pipelines)
        .with_config(controller::Config::default().concurrency(options.concurrency))
        .watches_stream(release_events.touched_objects(), |r| {
            world::pipeline_of_release(&r)
        })
        .watches_stream(approval_events.touched_objects(), move |a| {
            world::pipeline_of_approval(&releases_for_approvals, &a)
        })
        .watches_stream(job_events.touched_objects(), |j| world::pipeline_of_job(&j))
        .reconcile_on(workload_triggers)
        .reconcile_on(route_triggers)
        .reconcile_on(sync_triggers)
        .reconcile_on(probe_results)
        .reconcile_on(cluster_changes)
        .reconcile_on(repo_changes)
        .reconcile_all_on(futures::stream::select(gained, synced))
        .graceful_shutdown_on(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((pipeline, _)) => tracing::debug!(%pipeline, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile did not complete"),
            }
        });
    controller.await;

    health.set_stopping();
    prober.stop_all();
    if let Some(elector) = elector {
        // The elector hands the Lease over when it sees the shutdown.
        let _ = elector.await;
    }
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}
