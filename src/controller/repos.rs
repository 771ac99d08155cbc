//! The Git repositories of environments in GitOps mode: each read on a timer (and at
//! once after a commit) by a task of its own, cached for the decisions, which never wait
//! on Git; and committed to when a decision asks.
//!
//! A read fetches the branch, reads the layout's files and the history (who last changed
//! the images), and the Argo CD Application or Flux Kustomization that applies it. A
//! repository that cannot be read is retried with backoff and its environment waits,
//! saying why; nothing is lost, since every commit is derived again from the status.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::reflector::ObjectRef,
};
use tokio::sync::mpsc;

use crate::{
    api::Pipeline,
    engine::{CommitRequest, GitChange, GitRead, GitView, ReleaseView},
    gitops::{
        image::ImageRef,
        message::commit_message,
        repo::{Branch, Credentials, GitError, Head},
        sync,
    },
    validation::{SyncSource, ValidGit, ValidPipeline},
};

use super::sync_objects::SyncStores;

/// How often a repository is read when nothing else asks.
pub const DEFAULT_POLL: Duration = Duration::from_secs(15);
/// How often a repository is read while Argo CD or Flux has yet to apply its images (or
/// report them healthy): a rollout's progress is seen within this.
const AWAITING_POLL: Duration = Duration::from_secs(2);
/// The longest wait between reads of a repository that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where repositories are cached and how often they are read.
#[derive(Clone, Debug)]
pub struct GitOptions {
    /// The directory of the bare caches (an emptyDir in the chart).
    pub cache: PathBuf,
    /// How often each repository is read.
    pub poll: Duration,
}

impl Default for GitOptions {
    fn default() -> Self {
        Self {
            cache: std::env::temp_dir().join("greenlight-git"),
            poll: DEFAULT_POLL,
        }
    }
}

/// Which environment of which Pipeline.
type Key = (ObjectRef<Pipeline>, String);

/// One environment's repository.
struct Entry {
    git: ValidGit,
    /// The cluster the sync object is in (its kubeconfig Secret) and the environment's
    /// target namespace there, whose connection reads it; `None`: ours.
    cluster: Option<(String, String)>,
    /// The last read, once there is one.
    read: Option<Result<Read, String>>,
    /// Its reading task, once started: the only one that reads it.
    task: Option<u64>,
}

/// A read: the branch, and what applies it.
#[derive(Clone, Debug, PartialEq)]
struct Read {
    head: HeadView,
    /// The sync object's JSON, or why it cannot be read.
    sync: Option<Result<serde_json::Value, String>>,
}

/// What is kept of a [`Head`].
#[derive(Clone, Debug, PartialEq)]
struct HeadView {
    commit: String,
    images: BTreeMap<String, ImageRef>,
    changed_by: Option<GitChange>,
    declaring: Vec<String>,
}

impl From<Head> for HeadView {
    fn from(head: Head) -> Self {
        Self {
            commit: head.commit,
            images: head.images,
            changed_by: head.changed_by.map(|c| GitChange {
                commit: c.id,
                author: c.author,
                summary: c.summary,
            }),
            declaring: head.declaring,
        }
    }
}

/// The repositories, shared by the reconciles and the reading tasks.
#[derive(Clone)]
pub struct Repositories {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Clients of other clusters, for sync objects there.
    clusters: Arc<super::clusters::Clusters>,
    /// The sync objects watched in the controller's own cluster.
    sync: SyncStores,
    cache: PathBuf,
    poll: Duration,
    changed: mpsc::UnboundedSender<ObjectRef<Pipeline>>,
    entries: Mutex<HashMap<Key, Entry>>,
    /// Numbers the reading tasks.
    tasks: std::sync::atomic::AtomicU64,
    /// One operation at a time per repository cache (fetches and commits take turns),
    /// and when each of its branches was last fetched.
    caches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Fetched>>>>,
}

/// When each branch of a repository cache was last fetched (or pushed to).
type Fetched = HashMap<String, Instant>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Repositories {
    /// Repositories cached and read as `options` say; `changed` receives the Pipelines
    /// whose repository read changed.
    pub fn new(
        client: Client,
        clusters: Arc<super::clusters::Clusters>,
        sync: SyncStores,
        options: GitOptions,
        changed: mpsc::UnboundedSender<ObjectRef<Pipeline>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                clusters,
                sync,
                cache: options.cache,
                poll: options.poll,
                changed,
                entries: Mutex::new(HashMap::new()),
                tasks: std::sync::atomic::AtomicU64::new(0),
                caches: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// What a decision about `pipeline` sees of its repositories: the last read of each
    /// GitOps environment (none before the first). Starts reading the ones not read yet.
    pub fn views(
        &self,
        pipeline: &ObjectRef<Pipeline>,
        valid: &ValidPipeline,
        releases: &[ReleaseView],
    ) -> Vec<GitView> {
        let mut views = Vec::new();
        let mut start = Vec::new();
        {
            let mut entries = lock(&self.inner.entries);
            // Environments no longer in GitOps mode (or gone) stop being read.
            entries.retain(|(p, environment), _| {
                p != pipeline
                    || valid
                        .environment(environment)
                        .is_some_and(|e| e.git.is_some())
            });
            for env in &valid.environments {
                let Some(git) = &env.git else { continue };
                let key = (pipeline.clone(), env.name.clone());
                let cluster = env.cluster.clone().map(|c| (c, env.namespace.clone()));
                let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                    git: git.clone(),
                    cluster: cluster.clone(),
                    read: None,
                    task: None,
                });
                if entry.git != *git || entry.cluster != cluster {
                    entry.git = git.clone();
                    entry.cluster = cluster;
                    entry.read = None;
                }
                if entry.task.is_none() {
                    let task = self
                        .inner
                        .tasks
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    entry.task = Some(task);
                    start.push((key, task));
                }
                if let Some(read) = &entry.read {
                    // Watched in our cluster: the store's object, fresher than the read's.
                    let watched = entry
                        .cluster
                        .is_none()
                        .then(|| self.inner.sync.get(&entry.git.sync))
                        .flatten();
                    views.push(GitView {
                        environment: env.name.clone(),
                        state: read
                            .clone()
                            .map(|read| view(&entry.git, &read, watched, releases)),
                    });
                }
            }
        }
        for (key, task) in start {
            let this = self.clone();
            tokio::spawn(async move { this.poll(key, task).await });
        }
        views
    }

    /// Reads one repository until it is forgotten (as task `task` of its entry).
    async fn poll(self, key: Key, task: u64) {
        let mut failures = 0u32;
        loop {
            let Some((git, cluster)) = self.entry_spec(&key, Some(task)) else {
                return;
            };
            let read = self.read(&key, &git, cluster.as_ref()).await;
            failures = if read.is_ok() { 0 } else { failures + 1 };
            if let Err(why) = &read {
                tracing::warn!(pipeline = %key.0, environment = %key.1, repository = %git.repository, %why, "cannot read the GitOps repository; retrying with backoff");
            }
            let awaiting = read.as_ref().is_ok_and(|read| awaits_applier(&git, read));
            self.store(&key, &git, read);
            let wait = if failures > 0 {
                (self.inner.poll * 2u32.saturating_pow(failures.min(8) - 1)).min(MAX_BACKOFF)
            } else if awaiting {
                self.inner.poll.min(AWAITING_POLL)
            } else {
                self.inner.poll
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The spec of a repository still in use; `None` once forgotten (its reading task
    /// then ends).
    /// (With `task`, only for that reading task: a replaced one ends.)
    fn entry_spec(
        &self,
        key: &Key,
        task: Option<u64>,
    ) -> Option<(ValidGit, Option<(String, String)>)> {
        lock(&self.inner.entries)
            .get(key)
            .filter(|entry| task.is_none() || entry.task == task)
            .map(|entry| (entry.git.clone(), entry.cluster.clone()))
    }

    /// Stops reading the repositories of a deleted Pipeline.
    pub fn forget(&self, pipeline: &ObjectRef<Pipeline>) {
        lock(&self.inner.entries).retain(|(p, _), _| p != pipeline);
    }

    /// Keeps a read (unless the spec changed meanwhile); the Pipeline is reconciled when
    /// it differs from the last one.
    fn store(&self, key: &Key, git: &ValidGit, read: Result<Read, String>) {
        let changed = {
            let mut entries = lock(&self.inner.entries);
            let Some(entry) = entries.get_mut(key) else {
                return;
            };
            if entry.git != *git {
                return;
            }
            let changed = entry.read.as_ref() != Some(&read);
            entry.read = Some(read);
            changed
        };
        if changed {
            let _ = self.inner.changed.send(key.0.clone());
        }
    }

    /// Fetches the branch and reads what applies it.
    async fn read(
        &self,
        key: &Key,
        git: &ValidGit,
        cluster: Option<&(String, String)>,
    ) -> Result<Read, String> {
        let layout = git.layout.clone();
        // Environments on one branch take turns on its cache: a fetch another one made
        // just now (half the shortest poll ago) is read, not made again.
        let fresh = self.inner.poll.min(AWAITING_POLL) / 2;
        let head = self
            .with_branch(key, git, move |branch, pipeline, environment, fetched| {
                if fetched.is_some_and(|at| at.elapsed() < fresh) {
                    return Ok((branch.read_fetched(&layout, pipeline, environment)?, false));
                }
                Ok((branch.fetch(&layout, pipeline, environment)?, true))
            })
            .await
            .map_err(|e| e.to_string())?;
        let sync = self.sync_object(key, git, cluster).await;
        Ok(Read {
            head: head.into(),
            sync,
        })
    }

    /// The Argo CD Application or Flux Kustomization, as JSON; `None` without one.
    async fn sync_object(
        &self,
        key: &Key,
        git: &ValidGit,
        cluster: Option<&(String, String)>,
    ) -> Option<Result<serde_json::Value, String>> {
        if cluster.is_none() && self.inner.sync.get(&git.sync).is_some() {
            // Watched: read from the store when a decision asks.
            return None;
        }
        let ((group, version, kind, plural), namespace, name) = match &git.sync {
            SyncSource::Workloads => return None,
            SyncSource::ArgoCd { namespace, name } => (sync::ARGO_CD, namespace, name),
            SyncSource::Flux { namespace, name } => (sync::FLUX, namespace, name),
        };
        let client = match cluster {
            None => self.inner.client.clone(),
            Some((cluster, target_namespace)) => {
                let pipeline_namespace = key.0.namespace.clone().unwrap_or_default();
                match self
                    .inner
                    .clusters
                    .stores_of(&pipeline_namespace, cluster, target_namespace)
                {
                    Some(stores) => stores.client,
                    None => return Some(Err(format!("cluster {cluster} is not connected"))),
                }
            }
        };
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
        let answer = tokio::time::timeout(super::actions::API_TIMEOUT, api.get(name)).await;
        Some(match answer {
            Err(_) => Err(format!("{kind} {namespace}/{name}: no answer in time")),
            Ok(Err(kube::Error::Api(e))) if e.code == 404 => {
                Err(format!("{kind} {namespace}/{name} does not exist"))
            }
            Ok(Err(e)) => Err(format!("{kind} {namespace}/{name} cannot be read: {e}")),
            Ok(Ok(object)) => Ok(
                serde_json::json!({"status": object.data.get("status").cloned().unwrap_or_default()}),
            ),
        })
    }

    /// Commits a decision's images ([`Branch::commit_images`]) and keeps the branch as it
    /// is then, so the next decision sees the commit without waiting for a poll.
    pub async fn commit(
        &self,
        pipeline: &ObjectRef<Pipeline>,
        request: &CommitRequest,
    ) -> Result<(), GitError> {
        let key = (pipeline.clone(), request.environment.clone());
        let Some((git, cluster)) = self.entry_spec(&key, None) else {
            return Err(GitError::Layout(format!(
                "environment {} has no repository read yet",
                request.environment
            )));
        };
        let pipeline_id = pipeline_id(pipeline);
        let message = commit_message(&pipeline_id, request);
        let images = request.images.clone();
        let layout = git.layout.clone();
        let author = git.author.clone();
        let head = self
            .with_branch(&key, &git, move |branch, pipeline, environment, _| {
                let head = branch.commit_images(
                    &layout,
                    pipeline,
                    environment,
                    &images,
                    &message,
                    (&author.0, &author.1),
                )?;
                Ok((head, true))
            })
            .await?;
        let sync = self.sync_object(&key, &git, cluster.as_ref()).await;
        self.store(
            &key,
            &git,
            Ok(Read {
                head: head.into(),
                sync,
            }),
        );
        Ok(())
    }

    /// Runs `work` on a blocking thread with the branch's cache, one at a time per cache,
    /// with the credentials of its Secret and when the branch was last fetched; `work`
    /// says whether it fetched (or pushed) the branch.
    async fn with_branch<T: Send + 'static>(
        &self,
        key: &Key,
        git: &ValidGit,
        work: impl FnOnce(&Branch, &str, &str, Option<Instant>) -> Result<(T, bool), GitError>
        + Send
        + 'static,
    ) -> Result<T, GitError> {
        let namespace = key.0.namespace.clone().unwrap_or_default();
        let credentials = match &git.secret {
            None => Credentials::default(),
            Some(name) => self.credentials(&namespace, name).await?,
        };
        let turn = {
            let mut caches = lock(&self.inner.caches);
            caches.entry(git.repository.clone()).or_default().clone()
        };
        let mut fetched = turn.lock().await;
        let last = fetched.get(&git.branch).copied();
        let cache = self.inner.cache.clone();
        let (url, branch) = (git.repository.clone(), git.branch.clone());
        let (pipeline, environment) = (pipeline_id(&key.0), key.1.clone());
        let started = Instant::now();
        let (done, fetched_now) = tokio::task::spawn_blocking(move || {
            let branch = Branch::open(&cache, &url, &branch, credentials)?;
            work(&branch, &pipeline, &environment, last)
        })
        .await
        .unwrap_or_else(|e| Err(GitError::Layout(format!("the Git task failed: {e}"))))?;
        if fetched_now {
            fetched.insert(git.branch.clone(), started);
        }
        Ok(done)
    }

    /// The credentials in Secret `namespace/name` (never logged).
    async fn credentials(&self, namespace: &str, name: &str) -> Result<Credentials, GitError> {
        let api: Api<Secret> = Api::namespaced(self.inner.client.clone(), namespace);
        let secret = match tokio::time::timeout(super::actions::API_TIMEOUT, api.get(name)).await {
            Ok(Ok(secret)) => secret,
            Ok(Err(e)) => {
                return Err(GitError::Credentials(format!(
                    "Secret {namespace}/{name} cannot be read: {e}"
                )));
            }
            Err(_) => {
                return Err(GitError::Credentials(format!(
                    "Secret {namespace}/{name}: no answer in time"
                )));
            }
        };
        let data = secret.data.unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        Ok(Credentials {
            username: text("username"),
            password: text("password"),
            identity: text("identity"),
            known_hosts: text("known_hosts"),
        })
    }
}

/// What the engine sees of a read: full image references where a Release's image is what
/// the files hold (a layout may store only a tag), and the sync state.
fn view(
    git: &ValidGit,
    read: &Read,
    watched: Option<serde_json::Value>,
    releases: &[ReleaseView],
) -> GitRead {
    let images = read
        .head
        .images
        .iter()
        .map(|(artifact, declared)| {
            let parts = git.layout.parts(artifact);
            let known = releases
                .iter()
                .rev()
                .filter_map(|r| r.spec.artifacts.get(artifact))
                .find(|image| ImageRef::parse(image).keep(parts) == *declared);
            let image = known.cloned().unwrap_or_else(|| declared.to_string());
            (artifact.clone(), image)
        })
        .collect();
    let object = watched.map(Ok).or_else(|| read.sync.clone());
    let sync = sync_state(git, object.as_ref(), &read.head.declaring);
    GitRead {
        head: read.head.commit.clone(),
        images,
        changed_by: read.head.changed_by.clone(),
        sync,
    }
}

/// Whether Argo CD or Flux has yet to apply the branch's images or report them healthy.
fn awaits_applier(git: &ValidGit, read: &Read) -> bool {
    sync_state(git, read.sync.as_ref(), &read.head.declaring)
        .is_some_and(|state| state != crate::engine::SyncState::Healthy)
}

/// Where Argo CD or Flux stands with the images of `declaring`, from its object (or why it
/// could not be read); `None` when the workloads say.
fn sync_state(
    git: &ValidGit,
    object: Option<&Result<serde_json::Value, String>>,
    declaring: &[String],
) -> Option<crate::engine::SyncState> {
    match (&git.sync, object?) {
        (SyncSource::Workloads, _) => None,
        (_, Err(why)) => Some(crate::engine::SyncState::Waiting(why.clone())),
        (SyncSource::ArgoCd { .. }, Ok(object)) => Some(sync::argo_cd(object, declaring)),
        (SyncSource::Flux { .. }, Ok(object)) => Some(sync::flux(object, declaring)),
    }
}

/// `namespace/name`, as the `Greenlight-Pipeline` trailer writes it.
fn pipeline_id(pipeline: &ObjectRef<Pipeline>) -> String {
    format!(
        "{}/{}",
        pipeline.namespace.as_deref().unwrap_or_default(),
        pipeline.name
    )
}
