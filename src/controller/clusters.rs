//! Environments in other clusters: one connection per kubeconfig Secret and target
//! namespace, made when a Pipeline first needs it and dropped when none does.
//!
//! A connection reads its Secret from the controller's own cluster (never logging its
//! contents), builds a client from the kubeconfig, checks that the target namespace answers
//! for every kind it watches (so an unauthorised cluster is told apart from a reachable
//! one), then watches the workloads and Greenlight's Jobs there. Whatever goes wrong is its
//! [`Reach`]: the environments it serves wait, nothing else does, and it retries with
//! backoff (1 s doubling to 5 min) until the cluster answers. Every change of reach, and
//! every workload or Job it sees change, reconciles the Pipelines that use it.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
use kube::{
    Api, Client, Config,
    api::ListParams,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    reconcile::backoff,
    routes::RouteStore,
    workloads::{WorkloadStores, drivers},
    world,
};
use crate::{api::Pipeline, engine::jobs::labels, metrics::Metrics};

/// How long one call to another cluster may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a connected cluster's kubeconfig Secret is read again: a changed Secret
/// (rotated credentials, a moved server) reconnects with it.
pub const SECRET_CHECK: Duration = Duration::from_secs(60);

/// Where another cluster's kubeconfig is: a key of a Secret in a Pipeline's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeconfigSecret {
    /// The Secret's namespace (the Pipeline's).
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key under `data` holding the kubeconfig.
    pub key: String,
}

impl fmt::Display for KubeconfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secret {}/{} key {:?}",
            self.namespace, self.name, self.key
        )
    }
}

/// One connection: a cluster (by its kubeconfig Secret) and a target namespace in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Remote {
    /// The kubeconfig.
    pub secret: KubeconfigSecret,
    /// The target namespace in that cluster.
    pub namespace: String,
}

impl Remote {
    /// Its metric labels: the Secret's namespace and name, the target namespace.
    fn labels(&self) -> (&str, &str, &str) {
        (&self.secret.namespace, &self.secret.name, &self.namespace)
    }
}

/// Why another cluster cannot be used. The messages name the Secret, never its contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The Secret does not exist (or cannot be read).
    #[error("{secret}: the Secret cannot be read: {reason}")]
    Secret {
        /// The Secret.
        secret: KubeconfigSecret,
        /// The API server's answer.
        reason: String,
    },
    /// The Secret has no such key.
    #[error("{secret}: the Secret has no such key (its keys: {keys})")]
    NoKey {
        /// The Secret.
        secret: KubeconfigSecret,
        /// The keys it has, comma-separated.
        keys: String,
    },
    /// The key does not hold a usable kubeconfig.
    #[error("{secret}: not a usable kubeconfig: {reason}")]
    Kubeconfig {
        /// The Secret.
        secret: KubeconfigSecret,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster does not answer.
    #[error("the cluster of {secret} does not answer: {reason}")]
    Unreachable {
        /// The Secret.
        secret: KubeconfigSecret,
        /// The error.
        reason: String,
    },
    /// The cluster answers but refuses the credentials or the access Greenlight needs.
    #[error("the cluster of {secret} refuses access: {reason}")]
    Unauthorised {
        /// The Secret.
        secret: KubeconfigSecret,
        /// The API server's answer.
        reason: String,
    },
}

/// How a connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Not yet connected (or its caches are not yet filled).
    Connecting,
    /// Connected, every cache filled.
    Ready,
    /// Failed; retried by itself.
    Unreachable {
        /// Why.
        error: ClusterError,
        /// Failed attempts in a row.
        attempts: u32,
    },
}

/// Builds a client of the cluster a kubeconfig Secret describes (its current context).
pub async fn client_from_secret(
    secret: &Secret,
    at: &KubeconfigSecret,
) -> Result<Client, ClusterError> {
    let data = secret.data.clone().unwrap_or_default();
    let Some(bytes) = data.get(&at.key) else {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        return Err(ClusterError::NoKey {
            secret: at.clone(),
            keys: if keys.is_empty() {
                "none".into()
            } else {
                keys.join(", ")
            },
        });
    };
    let invalid = |reason: String| ClusterError::Kubeconfig {
        secret: at.clone(),
        reason,
    };
    let text = std::str::from_utf8(&bytes.0).map_err(|_| invalid("not UTF-8 text".into()))?;
    // Parse errors name a line and column, never the text itself.
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| invalid(e.to_string()))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(e.to_string()))?;
    // The client's own retries of 503s and 429s would hide an outage for minutes: the
    // connection retries with its own backoff, and says why meanwhile.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| invalid(e.to_string()))
}

/// What an answer from another cluster means.
fn classify(secret: &KubeconfigSecret, error: &kube::Error) -> ClusterError {
    match error {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            ClusterError::Unauthorised {
                secret: secret.clone(),
                reason: status.message.clone(),
            }
        }
        other => ClusterError::Unreachable {
            secret: secret.clone(),
            reason: other.to_string(),
        },
    }
}

/// The caches of one connection.
#[derive(Clone)]
pub struct RemoteStores {
    /// The target workloads, every kind.
    pub workloads: WorkloadStores,
    /// Greenlight's Jobs.
    pub jobs: Store<Job>,
    /// HTTPRoutes, where that cluster serves the Gateway API.
    pub routes: RouteStore,
    /// A client of that cluster, for the actions.
    pub client: Client,
}

/// One connection: its reach, its caches once connected, and the task that keeps it.
struct Connection {
    reach: watch::Receiver<Reach>,
    stores: Arc<Mutex<Option<RemoteStores>>>,
    /// The Pipelines it serves, reconciled when anything changes there.
    users: Arc<Mutex<HashSet<ObjectRef<Pipeline>>>>,
    task: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every connection to another cluster.
pub struct Clusters {
    local: Client,
    metrics: Option<Metrics>,
    secret_check: Duration,
    triggers: mpsc::UnboundedSender<ObjectRef<Pipeline>>,
    connections: Mutex<BTreeMap<Remote, Connection>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Clusters {
    /// No connections yet. `local` reads the Secrets; `triggers` receives the Pipelines to
    /// reconcile when a connection changes.
    pub fn new(local: Client, triggers: mpsc::UnboundedSender<ObjectRef<Pipeline>>) -> Self {
        Self {
            local,
            metrics: None,
            secret_check: SECRET_CHECK,
            triggers,
            connections: Mutex::default(),
        }
    }

    /// Reports each connection in `metrics` (`greenlight_cluster_connected`,
    /// `greenlight_cluster_connection_failures_total`).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Reads each connected cluster's Secret again every `every` (default [`SECRET_CHECK`]).
    pub fn with_secret_check(mut self, every: Duration) -> Self {
        self.secret_check = every;
        self
    }

    /// Makes `pipeline` a user of exactly the connections in `remotes`: connects the new
    /// ones, and drops those no Pipeline uses any more.
    pub fn use_only(&self, pipeline: &ObjectRef<Pipeline>, remotes: &BTreeSet<Remote>) {
        let mut connections = lock(&self.connections);
        for remote in remotes {
            let connection = connections
                .entry(remote.clone())
                .or_insert_with(|| self.connect(remote.clone()));
            lock(&connection.users).insert(pipeline.clone());
        }
        connections.retain(|remote, connection| {
            let mut users = lock(&connection.users);
            if !remotes.contains(remote) {
                users.remove(pipeline);
            }
            let used = !users.is_empty();
            if !used {
                if let Some(metrics) = &self.metrics {
                    metrics.forget_cluster(remote.labels());
                }
                tracing::info!(secret = %remote.secret, namespace = %remote.namespace, "no Pipeline targets this cluster namespace any more; disconnecting");
            }
            used
        });
    }

    /// How the connection stands, if one is kept.
    pub fn reach(&self, remote: &Remote) -> Option<Reach> {
        let connections = lock(&self.connections);
        Some(connections.get(remote)?.reach.borrow().clone())
    }

    /// The caches of a Ready connection.
    pub fn stores(&self, remote: &Remote) -> Option<RemoteStores> {
        let connections = lock(&self.connections);
        let connection = connections.get(remote)?;
        if *connection.reach.borrow() != Reach::Ready {
            return None;
        }
        lock(&connection.stores).clone()
    }

    /// The caches of a Ready connection of a Pipeline in `namespace` to `namespace` of
    /// `cluster` (its Secret's name), whatever the key in the Secret.
    pub fn stores_of(
        &self,
        pipeline_namespace: &str,
        cluster: &str,
        namespace: &str,
    ) -> Option<RemoteStores> {
        let remote = {
            let connections = lock(&self.connections);
            connections
                .keys()
                .find(|r| {
                    r.secret.namespace == pipeline_namespace
                        && r.secret.name == cluster
                        && r.namespace == namespace
                })?
                .clone()
        };
        self.stores(&remote)
    }

    /// How many connections are kept.
    pub fn len(&self) -> usize {
        lock(&self.connections).len()
    }

    /// Whether no connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn connect(&self, remote: Remote) -> Connection {
        tracing::info!(secret = %remote.secret, namespace = %remote.namespace, "connecting to another cluster");
        let (reach_tx, reach) = watch::channel(Reach::Connecting);
        let stores = Arc::new(Mutex::new(None));
        let users = Arc::new(Mutex::new(HashSet::new()));
        if let Some(metrics) = &self.metrics {
            metrics.cluster_connected(remote.labels(), false);
        }
        let keeper = Keeper {
            metrics: self.metrics.clone(),
            local: self.local.clone(),
            secret_check: self.secret_check,
            remote,
            reach: reach_tx,
            stores: stores.clone(),
            users: users.clone(),
            triggers: self.triggers.clone(),
        };
        Connection {
            reach,
            stores,
            users,
            task: tokio::spawn(keeper.run()),
        }
    }
}

/// Why a connection's watches stopped.
enum Ended {
    /// A watch failed.
    Failed(ClusterError),
    /// The kubeconfig Secret changed.
    SecretChanged,
}

/// The task behind one connection.
struct Keeper {
    metrics: Option<Metrics>,
    local: Client,
    secret_check: Duration,
    remote: Remote,
    reach: watch::Sender<Reach>,
    stores: Arc<Mutex<Option<RemoteStores>>>,
    users: Arc<Mutex<HashSet<ObjectRef<Pipeline>>>>,
    triggers: mpsc::UnboundedSender<ObjectRef<Pipeline>>,
}

impl Keeper {
    fn notify_users(&self) {
        for pipeline in lock(&self.users).iter() {
            let _ = self.triggers.send(pipeline.clone());
        }
    }

    fn set(&self, reach: Reach) {
        let changed = self.reach.send_if_modified(|current| {
            let changed = *current != reach;
            *current = reach.clone();
            changed
        });
        if let Some(metrics) = &self.metrics {
            metrics.cluster_connected(self.remote.labels(), reach == Reach::Ready);
        }
        if changed {
            match &reach {
                Reach::Unreachable { error, attempts } => {
                    tracing::warn!(%error, attempts, "another cluster cannot be used; retrying with backoff");
                }
                Reach::Ready => {
                    tracing::info!(secret = %self.remote.secret, namespace = %self.remote.namespace, "connected to another cluster");
                }
                Reach::Connecting => {}
            }
            self.notify_users();
        }
    }

    fn failed(&self, error: ClusterError) -> Duration {
        if let Some(metrics) = &self.metrics {
            metrics.cluster_failed(self.remote.labels());
        }
        let attempts = match &*self.reach.borrow() {
            Reach::Unreachable { attempts, .. } => attempts.saturating_add(1),
            _ => 1,
        };
        self.set(Reach::Unreachable { error, attempts });
        backoff(attempts)
    }

    async fn run(self) {
        loop {
            let (client, version) = match self.connect().await {
                Ok(connected) => connected,
                Err(error) => {
                    let delay = self.failed(error);
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            // Connected: watch until a watch fails or the Secret changes, then start over.
            let ended = self.watch(client, version).await;
            *lock(&self.stores) = None;
            match ended {
                Ended::SecretChanged => {
                    tracing::info!(secret = %self.remote.secret, "the kubeconfig Secret changed; reconnecting with it");
                    self.set(Reach::Connecting);
                }
                Ended::Failed(error) => {
                    let delay = self.failed(error);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Reads the Secret (its `resourceVersion` too).
    async fn read_secret(&self) -> Result<Secret, ClusterError> {
        let at = &self.remote.secret;
        let secrets: Api<Secret> = Api::namespaced(self.local.clone(), &at.namespace);
        tokio::time::timeout(CALL_TIMEOUT, secrets.get(&at.name))
            .await
            .map_err(|_| ClusterError::Secret {
                secret: at.clone(),
                reason: "the read timed out".into(),
            })?
            .map_err(|e| ClusterError::Secret {
                secret: at.clone(),
                reason: e.to_string(),
            })
    }

    /// Reads the Secret, builds a client, and lists every kind in the target namespace.
    /// Returns the client and the Secret's version it was built from.
    async fn connect(&self) -> Result<(Client, Option<String>), ClusterError> {
        let at = &self.remote.secret;
        let secret = self.read_secret().await?;
        let client = client_from_secret(&secret, at).await?;
        let ns = &self.remote.namespace;
        let probe = ListParams::default().limit(1);
        for driver in drivers() {
            let api: Api<kube::core::DynamicObject> =
                Api::namespaced_with(client.clone(), ns, &driver.api_resource());
            self.answer(api.list_metadata(&probe)).await?;
        }
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        self.answer(jobs.list_metadata(&probe)).await?;
        Ok((client, secret.metadata.resource_version))
    }

    async fn answer<T>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => Err(ClusterError::Unreachable {
                secret: self.remote.secret.clone(),
                reason: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
            }),
            Ok(result) => result.map_err(|e| classify(&self.remote.secret, &e)),
        }
    }

    /// Watches the namespace until a watch fails (returning why) or the Secret changes.
    async fn watch(&self, client: Client, secret_version: Option<String>) -> Ended {
        let ns = self.remote.namespace.as_str();
        let (workloads, touched) = WorkloadStores::watch(&client, Some(ns));
        let (jobs, job_writer) = reflector::store();
        let job_events = watcher(
            Api::<Job>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(&format!("{}=greenlight", labels::MANAGED_BY)),
        )
        .modify(world::trim_job)
        .reflect(job_writer)
        .touched_objects()
        .map(|r| r.map(|_| ()))
        .boxed();
        let workload_events = futures::stream::select_all(touched)
            .map(|r| r.map(|_| ()))
            .boxed();
        let (routes, route_events) =
            RouteStore::watch(&client, Some(ns), super::discovery::REDISCOVER);
        *lock(&self.stores) = Some(RemoteStores {
            workloads: workloads.clone(),
            jobs: jobs.clone(),
            routes: routes.clone(),
            client,
        });
        let route_events = route_events.map(|r| r.map(|_| ())).boxed();
        let mut events = futures::stream::select_all([workload_events, job_events, route_events]);
        let mut synced = std::pin::pin!(async {
            workloads.wait_until_ready().await
                && world::ready(&jobs).await
                && routes.wait_until_ready().await
        });
        let mut ready = false;
        let mut check = tokio::time::interval(self.secret_check);
        check.tick().await;
        loop {
            tokio::select! {
                _ = check.tick() => {
                    // A Secret that cannot be read now leaves the working connection be.
                    if let Ok(secret) = self.read_secret().await
                        && secret.metadata.resource_version != secret_version
                    {
                        return Ended::SecretChanged;
                    }
                }
                done = &mut synced, if !ready => {
                    ready = done;
                    if ready {
                        self.set(Reach::Ready);
                    }
                }
                event = events.next() => match event {
                    Some(Ok(())) => {
                        if ready {
                            self.notify_users();
                        }
                    }
                    Some(Err(error)) => {
                        return Ended::Failed(match error {
                            watcher::Error::InitialListFailed(e)
                            | watcher::Error::WatchStartFailed(e)
                            | watcher::Error::WatchFailed(e) => classify(&self.remote.secret, &e),
                            other => ClusterError::Unreachable {
                                secret: self.remote.secret.clone(),
                                reason: other.to_string(),
                            },
                        });
                    }
                    None => {
                        return Ended::Failed(ClusterError::Unreachable {
                            secret: self.remote.secret.clone(),
                            reason: "the watch ended".into(),
                        });
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn at() -> KubeconfigSecret {
        KubeconfigSecret {
            namespace: "shop".into(),
            name: "prod-cluster".into(),
            key: "value".into(),
        }
    }

    fn secret(key: &str, text: &str) -> Secret {
        Secret {
            data: Some([(key.to_owned(), ByteString(text.as_bytes().to_vec()))].into()),
            ..Secret::default()
        }
    }

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://prod.example.com:6443"}
users:
- name: greenlight
  user: {token: "s3cr3t-token"}
contexts:
- name: prod
  context: {cluster: prod, user: greenlight, namespace: shop-prod}
current-context: prod
"#;

    #[tokio::test]
    async fn a_kubeconfig_secret_gives_a_client_of_its_current_context() {
        let client = client_from_secret(&secret("value", KUBECONFIG), &at())
            .await
            .expect("a client");
        assert_eq!(client.default_namespace(), "shop-prod");
    }

    #[tokio::test]
    async fn a_missing_key_names_the_secret_and_the_keys_it_has() {
        let error = client_from_secret(&secret("config", KUBECONFIG), &at())
            .await
            .err()
            .expect("no key `value`");
        assert_eq!(
            error.to_string(),
            "Secret shop/prod-cluster key \"value\": the Secret has no such key (its keys: config)"
        );
    }

    #[tokio::test]
    async fn a_broken_kubeconfig_is_an_error_that_never_shows_its_contents() {
        let broken = KUBECONFIG.replace("current-context: prod", "current-context: [prod");
        let error = client_from_secret(&secret("value", &broken), &at())
            .await
            .err()
            .expect("not YAML");
        let message = error.to_string();
        assert!(
            message
                .starts_with("Secret shop/prod-cluster key \"value\": not a usable kubeconfig: "),
            "{message}"
        );
        assert!(!message.contains("s3cr3t-token"), "{message}");
        let no_context = KUBECONFIG.replace("current-context: prod", "current-context: staging");
        let error = client_from_secret(&secret("value", &no_context), &at())
            .await
            .err()
            .expect("no such context");
        assert!(!error.to_string().contains("s3cr3t-token"), "{error}");
    }

    #[test]
    fn refused_credentials_are_told_apart_from_an_unreachable_cluster() {
        let refused = kube::Error::Api(Box::new(
            kube::core::Status::failure("deployments is forbidden", "Forbidden").with_code(403),
        ));
        assert!(matches!(
            classify(&at(), &refused),
            ClusterError::Unauthorised { .. }
        ));
        let down = kube::Error::Api(Box::new(
            kube::core::Status::failure("etcd is down", "ServiceUnavailable").with_code(503),
        ));
        assert!(matches!(
            classify(&at(), &down),
            ClusterError::Unreachable { .. }
        ));
    }
}
