//! `target.git`: an environment whose version lives in a Git repository that Argo CD or
//! Flux applies (GitOps mode), instead of in workloads Greenlight patches.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL, DNS_SUBDOMAIN, limits};

/// Where an environment's version lives in Git, and how its images are written there.
/// Greenlight makes one commit per deploy or rollback to `branch`, changing only the image
/// fields of one layout (`kustomize`, `helm` or `yaml`) under `path`, and waits for the
/// commit to reach the cluster (`argoCDApplication`, `fluxKustomization`, or else the
/// target workloads).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("(has(self.kustomize) ? 1 : 0) + (has(self.helm) ? 1 : 0) + (has(self.yaml) ? 1 : 0) == 1").message("target.git needs exactly one of kustomize, helm and yaml: how the images are written").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!(has(self.argoCDApplication) && has(self.fluxKustomization))").message("target.git takes argoCDApplication or fluxKustomization, not both").reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct GitTarget {
    /// The repository: `https://…`, `ssh://…` or `git@host:path`, `git://…`, or
    /// `file://…` (tests).
    #[schemars(length(min = 1, max = limits::LONG))]
    pub repository: String,
    /// The branch Greenlight commits to (and Argo CD or Flux follows).
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub branch: String,
    /// The directory of the environment in the repository (`.`: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub path: Option<String>,
    /// A Secret in the Pipeline's namespace with the credentials: `username` (default
    /// `git`) and `password` (a token) for https; `identity` (a private key) and
    /// `known_hosts` for ssh. Unset: no credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<GitSecretRef>,
    /// Who the commits are by. Default: `Greenlight <greenlight@greenlight.dev>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<GitAuthor>,
    /// Images as `kustomize edit set image` writes them: the `images` list of the
    /// `kustomization.yaml` at `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeImages>,
    /// Images as fields of a Helm values file under `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmValues>,
    /// Images as the container `image` fields of the target workloads
    /// (`target.deployments` and `target.workloads`) in the manifests under `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml: Option<YamlManifests>,
    /// The Argo CD Application that applies `path`: a commit is deployed when it is synced
    /// to the commit and Healthy. Read in `target.cluster` if set.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "argoCDApplication"
    )]
    pub argo_cd_application: Option<SyncObject>,
    /// The Flux Kustomization that applies `path`: a commit is deployed when its
    /// `lastAppliedRevision` is the commit and it is Ready. Read in `target.cluster` if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux_kustomization: Option<SyncObject>,
}

/// The Secret with a repository's credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSecretRef {
    /// The Secret's name, in the Pipeline's namespace.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub name: String,
}

/// A commit's author and committer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitAuthor {
    /// The name.
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub name: String,
    /// The email address.
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub email: String,
}

/// The `images` entries of a `kustomization.yaml`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeImages {
    /// One entry per Release artifact.
    #[schemars(length(min = 1, max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["artifact".into()]))]
    pub images: Vec<KustomizeImage>,
}

/// One `images` entry: kustomize replaces the image `name` in the manifests with the
/// artifact's image (`newName`, `newTag`, `digest`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeImage {
    /// Key in the Release's `spec.artifacts`.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub artifact: String,
    /// The entry's `name`: the image as the manifests write it.
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub name: String,
}

/// Image fields of a Helm values file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmValues {
    /// The values file, relative to `path`. Default: `values.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub values_file: Option<String>,
    /// Where each artifact's image goes.
    #[schemars(length(min = 1, max = limits::ITEMS))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["artifact".into()]))]
    pub images: Vec<HelmImage>,
}

/// The dotted paths (`image.tag`) that hold one artifact's image, whole or in parts; at
/// least one is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.reference) || has(self.repository) || has(self.tag) || has(self.digest)").message("a helm image needs at least one of reference, repository, tag and digest").reason(Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct HelmImage {
    /// Key in the Release's `spec.artifacts`.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub artifact: String,
    /// The path of the whole reference (`registry/web:1.4.2@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub reference: Option<String>,
    /// The path of the repository (`registry/web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub repository: Option<String>,
    /// The path of the tag (`1.4.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub tag: Option<String>,
    /// The path of the digest (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::SHORT))]
    pub digest: Option<String>,
}

/// Plain manifests: the target workloads' container images, wherever under `path` each
/// workload is declared (`.yaml` and `.yml` files, several documents each).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct YamlManifests {}

/// An Argo CD Application or Flux Kustomization, read (never written) to learn whether a
/// commit reached the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncObject {
    /// Its name.
    #[schemars(length(min = 1, max = limits::OBJECT_NAME), pattern(DNS_SUBDOMAIN))]
    pub name: String,
    /// Its namespace (`argocd`, `flux-system`).
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub namespace: String,
}

impl GitTarget {
    /// The directory in the repository, `""` for its root.
    pub fn dir(&self) -> &str {
        match self.path.as_deref().map(|p| p.trim_matches('/')) {
            None | Some(".") => "",
            Some(path) => path,
        }
    }
}
