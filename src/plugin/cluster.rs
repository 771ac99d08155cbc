//! The plugin's only API traffic: connect with the kubeconfig, read Pipelines and
//! Releases, create Approvals. Everything else in the plugin is pure.

use std::{path::PathBuf, time::Duration};

use kube::{
    Api, Client, Config,
    api::{ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

use super::error::{PluginError, status_code};
use crate::api::{Approval, Pipeline, Release};

/// How long connecting may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many names a "not found" message lists.
const NAMES_SHOWN: usize = 12;

/// The global flags that choose the cluster and namespace.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`: this file instead of `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: this context instead of the current one.
    pub context: Option<String>,
    /// `-n`: this namespace instead of the context's.
    pub namespace: Option<String>,
}

/// A client and the namespace every command works in.
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
    /// The API server's URL, for errors where it did not answer.
    server: String,
}

/// What creating an Approval did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The Approval is new.
    Created,
    /// An identical Approval already existed: an earlier run made it.
    AlreadyExists,
}

impl Cluster {
    /// Loads the configuration as kubectl would: `--kubeconfig` and `--context` when
    /// given, else `$KUBECONFIG` / `~/.kube/config`, else the in-cluster config.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, PluginError> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..KubeConfigOptions::default()
        };
        let context = |source| PluginError::Context {
            context: options
                .context
                .as_ref()
                .map_or_else(|| "current".to_owned(), |c| format!("{c:?}")),
            source,
        };
        let mut config = match (&options.kubeconfig, &options.context) {
            (Some(path), _) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| PluginError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                    .await
                    .map_err(context)?
            }
            (None, Some(_)) => Config::from_kubeconfig(&kube_options)
                .await
                .map_err(context)?,
            (None, None) => Config::infer()
                .await
                .map_err(|source| PluginError::NoConfig { source })?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(REQUEST_TIMEOUT);
        config.write_timeout = Some(REQUEST_TIMEOUT);
        let namespace = options
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|source| PluginError::Client { source })?;
        Ok(Self {
            client,
            namespace,
            server,
        })
    }

    /// An API error; when the API server did not answer at all, `what` names it.
    pub fn failed(&self, what: String, source: kube::Error) -> PluginError {
        let what = if status_code(&source).is_some() {
            what
        } else {
            format!("{what} (API server {})", self.server)
        };
        PluginError::Api { what, source }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Pipeline `name`; when it does not exist, the error names those that do.
    pub async fn pipeline(&self, name: &str) -> Result<Pipeline, PluginError> {
        match self.api::<Pipeline>().get_opt(name).await {
            Ok(Some(pipeline)) => Ok(pipeline),
            Ok(None) => {
                let names = self
                    .api::<Pipeline>()
                    .list(&ListParams::default())
                    .await
                    .map(|list| {
                        list.items
                            .iter()
                            .filter_map(|p| p.metadata.name.clone())
                            .collect()
                    })
                    .ok();
                Err(PluginError::NotFound(not_found(
                    "Pipeline",
                    name,
                    &self.namespace,
                    names,
                )))
            }
            Err(source) => Err(self.failed(
                format!("could not read Pipeline {}/{name}", self.namespace),
                source,
            )),
        }
    }

    /// The Pipeline a Release travels through.
    pub async fn pipeline_of(&self, release: &Release) -> Result<Pipeline, PluginError> {
        let name = &release.spec.pipeline;
        match self.api::<Pipeline>().get_opt(name).await {
            Ok(Some(pipeline)) => Ok(pipeline),
            Ok(None) => Err(PluginError::NotFound(format!(
                "Release {} names Pipeline {name:?}, which does not exist in namespace {}",
                release.metadata.name.as_deref().unwrap_or_default(),
                self.namespace
            ))),
            Err(source) => Err(self.failed(
                format!("could not read Pipeline {}/{name}", self.namespace),
                source,
            )),
        }
    }

    /// The Release `name`; when it does not exist, the error names those that do.
    pub async fn release(&self, name: &str) -> Result<Release, PluginError> {
        match self.api::<Release>().get_opt(name).await {
            Ok(Some(release)) => Ok(release),
            Ok(None) => {
                let names = self.releases().await.ok().map(|mut releases| {
                    // Newest first: the release meant is most likely a recent one.
                    releases.sort_by(|a, b| {
                        b.metadata
                            .creation_timestamp
                            .cmp(&a.metadata.creation_timestamp)
                    });
                    releases
                        .into_iter()
                        .filter_map(|r| r.metadata.name)
                        .collect()
                });
                Err(PluginError::NotFound(not_found(
                    "Release",
                    name,
                    &self.namespace,
                    names,
                )))
            }
            Err(source) => Err(self.failed(
                format!("could not read Release {}/{name}", self.namespace),
                source,
            )),
        }
    }

    /// Every Release in the namespace.
    pub async fn releases(&self) -> Result<Vec<Release>, PluginError> {
        self.api::<Release>()
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|source| {
                self.failed(
                    format!(
                        "could not list the Releases in namespace {}",
                        self.namespace
                    ),
                    source,
                )
            })
    }

    /// Creates the Approval. One that already exists with the same spec counts as done
    /// (an earlier run made it); one with a different spec is an error, since Approvals
    /// cannot change.
    pub async fn submit(&self, approval: &Approval) -> Result<Submitted, PluginError> {
        let name = approval.metadata.name.clone().unwrap_or_default();
        let what = format!("approval {name} in namespace {}", self.namespace);
        let api = self.api::<Approval>();
        let error = match api.create(&PostParams::default(), approval).await {
            Ok(_) => return Ok(Submitted::Created),
            Err(error) => error,
        };
        match (status_code(&error), &error) {
            (Some(409), _) => {
                let existing = api.get(&name).await.map_err(|source| {
                    self.failed(
                        format!("{what} already exists, but could not be read"),
                        source,
                    )
                })?;
                if same_decision(&existing, approval) {
                    Ok(Submitted::AlreadyExists)
                } else {
                    Err(PluginError::Conflict(format!(
                        "{what} already exists with a different spec ({}); Approvals cannot be \
                         changed: delete it with `kubectl delete approval {name} -n {}` and run \
                         this again",
                        differences(&existing, approval),
                        self.namespace
                    )))
                }
            }
            (Some(400 | 403 | 422), kube::Error::Api(status)) => Err(PluginError::Refused {
                what,
                message: status.message.clone(),
            }),
            (Some(404), _) => Err(PluginError::NotFound(format!(
                "the API server does not serve approvals.greenlight.dev in namespace {} (are \
                 Greenlight's CRDs installed, and does the namespace exist?)",
                self.namespace
            ))),
            _ => Err(self.failed(format!("could not create {what}"), error)),
        }
    }
}

/// Whether two Approvals record the same decision (groups compared as sets).
fn same_decision(a: &Approval, b: &Approval) -> bool {
    let sorted = |groups: &[String]| {
        let mut groups = groups.to_vec();
        groups.sort();
        groups.dedup();
        groups
    };
    let (a, b) = (&a.spec, &b.spec);
    a.release == b.release
        && a.environment == b.environment
        && a.decision == b.decision
        && a.approver == b.approver
        && sorted(&a.groups) == sorted(&b.groups)
        && a.comment == b.comment
}

/// Which fields differ, in words: `comment "old" there, "new" asked`.
fn differences(existing: &Approval, wanted: &Approval) -> String {
    let (a, b) = (&existing.spec, &wanted.spec);
    let mut out = Vec::new();
    let mut field = |name: &str, there: String, asked: String| {
        if there != asked {
            out.push(format!("{name} {there} there, {asked} asked"));
        }
    };
    field(
        "release",
        format!("{:?}", a.release),
        format!("{:?}", b.release),
    );
    field(
        "environment",
        format!("{:?}", a.environment),
        format!("{:?}", b.environment),
    );
    field(
        "decision",
        format!("{:?}", a.decision),
        format!("{:?}", b.decision),
    );
    field(
        "approver",
        format!("{:?}", a.approver),
        format!("{:?}", b.approver),
    );
    field(
        "groups",
        format!("{:?}", a.groups),
        format!("{:?}", b.groups),
    );
    field(
        "comment",
        a.comment
            .as_deref()
            .map_or("none".into(), |c| format!("{c:?}")),
        b.comment
            .as_deref()
            .map_or("none".into(), |c| format!("{c:?}")),
    );
    out.join("; ")
}

/// `no Release "x" in namespace shop (did you mean "y"?); Releases there: a, b (and 3 more)`.
pub fn not_found(kind: &str, name: &str, namespace: &str, existing: Option<Vec<String>>) -> String {
    let mut message = format!("no {kind} {name:?} in namespace {namespace}");
    let Some(existing) = existing else {
        return message;
    };
    if existing.is_empty() {
        message.push_str(&format!("; there are no {kind}s there"));
        return message;
    }
    if let Some(close) = crate::suggest::closest(name, existing.iter().map(String::as_str)) {
        message.push_str(&format!(" (did you mean {close:?}?)"));
    }
    let shown = existing
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>();
    message.push_str(&format!("; {kind}s there: {}", shown.join(", ")));
    if existing.len() > shown.len() {
        message.push_str(&format!(" (and {} more)", existing.len() - shown.len()));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_name_lists_what_exists_and_suggests_the_closest() {
        let message = not_found(
            "Release",
            "shop-1-4-3",
            "shop",
            Some(vec!["shop-1-4-2".into(), "shop-1-3-0".into()]),
        );
        assert_eq!(
            message,
            "no Release \"shop-1-4-3\" in namespace shop (did you mean \"shop-1-4-2\"?); \
             Releases there: shop-1-4-2, shop-1-3-0"
        );
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let names = (0..20).map(|i| format!("r{i}")).collect();
        let message = not_found("Release", "zzzzzzzz", "ns", Some(names));
        assert!(message.ends_with("r11 (and 8 more)"), "{message}");
    }

    #[test]
    fn an_empty_namespace_says_so() {
        assert_eq!(
            not_found("Pipeline", "shop", "shop", Some(vec![])),
            "no Pipeline \"shop\" in namespace shop; there are no Pipelines there"
        );
    }
}
