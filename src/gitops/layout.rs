//! The three ways a repository declares an environment's images, each read and written
//! the same way: [`Layout::read`] gives each artifact's image as the files declare it,
//! [`Layout::write`] changes only those fields (see [`super::yaml_edit`]).

use std::collections::BTreeMap;

use super::{
    image::{ImageRef, Parts},
    yaml_edit::{self, Edits, Node},
};
use crate::api::{GitTarget, HelmImage, KustomizeImage, TargetWorkload, WorkloadKind};

/// Files of the repository under the environment's path: path from the repository's root
/// to text.
pub type Files = BTreeMap<String, String>;

/// How an environment's images are written in its repository.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    /// The `images` list of `kustomization.yaml`.
    Kustomize {
        /// The kustomization file's directory.
        dir: String,
        /// One entry per artifact.
        images: Vec<KustomizeImage>,
    },
    /// Fields of a Helm values file.
    Helm {
        /// The values file, from the repository's root.
        file: String,
        /// Where each artifact goes.
        images: Vec<HelmImage>,
    },
    /// The container images of workloads in plain manifests.
    Yaml {
        /// The manifests' directory.
        dir: String,
        /// One entry per target container.
        workloads: Vec<ManifestContainer>,
    },
}

/// One target container in the manifests.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestContainer {
    /// The workload's kind.
    pub kind: WorkloadKind,
    /// Its `metadata.name`.
    pub name: String,
    /// The container, if named.
    pub container: Option<String>,
    /// The Release artifact.
    pub artifact: String,
}

/// The file names kustomize accepts, in the order it looks for them.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

impl Layout {
    /// The layout `git` declares; `yaml` names the target workloads (`Target::workloads`).
    pub fn of<'a>(git: &GitTarget, workloads: impl Iterator<Item = TargetWorkload<'a>>) -> Self {
        let dir = git.dir().to_owned();
        if let Some(kustomize) = &git.kustomize {
            return Self::Kustomize {
                dir,
                images: kustomize.images.clone(),
            };
        }
        if let Some(helm) = &git.helm {
            let file = helm.values_file.as_deref().unwrap_or("values.yaml");
            return Self::Helm {
                file: join(&dir, file),
                images: helm.images.clone(),
            };
        }
        Self::Yaml {
            dir,
            workloads: workloads
                .map(|w| ManifestContainer {
                    kind: w.kind,
                    name: w.name.to_owned(),
                    container: w.container.map(str::to_owned),
                    artifact: w.artifact.to_owned(),
                })
                .collect(),
        }
    }

    /// Whether the file at `path` (from the repository's root) is one this layout reads.
    pub fn reads(&self, path: &str) -> bool {
        match self {
            Self::Kustomize { dir, .. } => KUSTOMIZATION_FILES.iter().any(|f| path == join(dir, f)),
            Self::Helm { file, .. } => path == file,
            Self::Yaml { dir, .. } => {
                (dir.is_empty() || path.starts_with(&format!("{dir}/")))
                    && (path.ends_with(".yaml") || path.ends_with(".yml"))
            }
        }
    }

    /// The parts of an image this layout stores for `artifact`: what a comparison of a
    /// Release's image with the files can look at.
    pub fn parts(&self, artifact: &str) -> Parts {
        match self {
            Self::Helm { images, .. } => {
                images
                    .iter()
                    .find(|i| i.artifact == artifact)
                    .map_or(Parts::ALL, |i| {
                        if i.reference.is_some() {
                            Parts::ALL
                        } else {
                            Parts {
                                name: i.repository.is_some(),
                                tag: i.tag.is_some(),
                                digest: i.digest.is_some(),
                            }
                        }
                    })
            }
            Self::Kustomize { .. } | Self::Yaml { .. } => Parts::ALL,
        }
    }

    /// The artifacts it declares, each once.
    pub fn artifacts(&self) -> Vec<&str> {
        let mut artifacts: Vec<&str> = match self {
            Self::Kustomize { images, .. } => images.iter().map(|i| i.artifact.as_str()).collect(),
            Self::Helm { images, .. } => images.iter().map(|i| i.artifact.as_str()).collect(),
            Self::Yaml { workloads, .. } => workloads.iter().map(|w| w.artifact.as_str()).collect(),
        };
        artifacts.sort_unstable();
        artifacts.dedup();
        artifacts
    }

    /// Each artifact's image as the files declare it (only the parts the layout stores).
    pub fn read(&self, files: &Files) -> Result<BTreeMap<String, ImageRef>, String> {
        match self {
            Self::Kustomize { dir, images } => {
                let (path, root) = kustomization(dir, files)?;
                let mut declared = BTreeMap::new();
                for image in images {
                    let entry =
                        kustomize_entry(&root, &image.name).map_err(|e| format!("{path}: {e}"))?;
                    let field = |key: &str| {
                        entry
                            .and_then(|e| e.get(key))
                            .and_then(Node::text)
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                    };
                    declared.insert(
                        image.artifact.clone(),
                        ImageRef {
                            name: field("newName").or_else(|| Some(image.name.clone())),
                            tag: field("newTag"),
                            digest: field("digest"),
                        },
                    );
                }
                Ok(declared)
            }
            Self::Helm { file, images } => {
                let root = document(file, files)?;
                let mut declared = BTreeMap::new();
                for image in images {
                    let value = |path: &Option<String>| -> Result<Option<String>, String> {
                        let Some(path) = path else { return Ok(None) };
                        match lookup(&root, path).map_err(|e| format!("{file}: {e}"))? {
                            None => Ok(None),
                            Some(node) => node
                                .text()
                                .map(|t| (!t.is_empty()).then(|| t.to_owned()))
                                .ok_or_else(|| format!("{file}: {path} is not a single value")),
                        }
                    };
                    let mut parsed = value(&image.reference)?
                        .map(|r| ImageRef::parse(&r))
                        .unwrap_or_default();
                    if image.repository.is_some() {
                        parsed.name = value(&image.repository)?;
                    }
                    if image.tag.is_some() {
                        parsed.tag = value(&image.tag)?;
                    }
                    if image.digest.is_some() {
                        parsed.digest = value(&image.digest)?;
                    }
                    declared.insert(image.artifact.clone(), parsed);
                }
                Ok(declared)
            }
            Self::Yaml { dir, workloads } => {
                let documents = manifests(self, files)?;
                let mut declared = BTreeMap::new();
                for workload in workloads {
                    let (path, container) = find_container(dir, &documents, workload)?;
                    let image = container.get("image").and_then(Node::text).ok_or_else(|| {
                        format!("{path}: {} {} has no image", workload.kind, workload.name)
                    })?;
                    declared.insert(workload.artifact.clone(), ImageRef::parse(image));
                }
                Ok(declared)
            }
        }
    }

    /// The files changed so that each artifact in `images` has its image; only the image
    /// fields change. Empty when the files already declare them.
    pub fn write(&self, files: &Files, images: &BTreeMap<String, String>) -> Result<Files, String> {
        let mut changed = Files::new();
        match self {
            Self::Kustomize {
                dir,
                images: entries,
            } => {
                let (path, root) = kustomization(dir, files)?;
                let src = &files[&path];
                let mut edits = Edits::new(src);
                for entry in entries {
                    let Some(image) = images.get(&entry.artifact) else {
                        continue;
                    };
                    write_kustomize_entry(&mut edits, &root, entry, &ImageRef::parse(image))
                        .map_err(|e| format!("{path}: {e}"))?;
                }
                if !edits.is_empty() {
                    changed.insert(path, edits.apply());
                }
            }
            Self::Helm {
                file,
                images: entries,
            } => {
                let root = document(file, files)?;
                let mut edits = Edits::new(&files[file]);
                for entry in entries {
                    let Some(image) = images.get(&entry.artifact) else {
                        continue;
                    };
                    let image = ImageRef::parse(image);
                    let fields = [
                        (&entry.reference, Some(image.to_string())),
                        (&entry.repository, image.name.clone()),
                        (&entry.tag, image.tag.clone()),
                        (&entry.digest, image.digest.clone()),
                    ];
                    for (path, value) in fields {
                        let Some(path) = path else { continue };
                        let keys: Vec<&str> = path.split('.').collect();
                        edits
                            .set(&root, &keys, value.as_deref().unwrap_or(""))
                            .map_err(|e| format!("{file}: {e}"))?;
                    }
                }
                if !edits.is_empty() {
                    changed.insert(file.clone(), edits.apply());
                }
            }
            Self::Yaml { dir, workloads } => {
                let documents = manifests(self, files)?;
                let mut by_file: BTreeMap<String, Vec<(Node, String)>> = BTreeMap::new();
                for workload in workloads {
                    let Some(image) = images.get(&workload.artifact) else {
                        continue;
                    };
                    let (path, container) = find_container(dir, &documents, workload)?;
                    let node = container.get("image").cloned().ok_or_else(|| {
                        format!("{path}: {} {} has no image", workload.kind, workload.name)
                    })?;
                    by_file.entry(path).or_default().push((node, image.clone()));
                }
                for (path, fields) in by_file {
                    let mut edits = Edits::new(&files[&path]);
                    for (node, image) in &fields {
                        edits
                            .set_scalar(node, image)
                            .map_err(|e| format!("{path}: image {e}"))?;
                    }
                    if !edits.is_empty() {
                        changed.insert(path, edits.apply());
                    }
                }
            }
        }
        Ok(changed)
    }
}

/// The node at a dotted path, `None` where a key is missing; an error where a value on
/// the way is not a mapping.
fn lookup<'a>(root: &'a Node, path: &str) -> Result<Option<&'a Node>, String> {
    let mut node = root;
    let mut walked = Vec::new();
    for key in path.split('.') {
        if !matches!(node, Node::Mapping { .. }) {
            return match node.text() {
                Some("" | "~" | "null") => Ok(None),
                _ if walked.is_empty() => Err("the document is not a mapping".into()),
                _ => Err(format!("{} is not a mapping", walked.join("."))),
            };
        }
        walked.push(key);
        match node.get(key) {
            Some(child) => node = child,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

/// `dir/file`, or `file` at the root.
fn join(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

/// The one document of `path`.
fn document(path: &str, files: &Files) -> Result<Node, String> {
    let src = files
        .get(path)
        .ok_or_else(|| format!("{path} does not exist in the repository"))?;
    let mut documents = yaml_edit::parse(src).map_err(|e| format!("{path}: {e}"))?;
    if documents.len() != 1 {
        return Err(format!(
            "{path} holds {} YAML documents, not one",
            documents.len()
        ));
    }
    Ok(documents.remove(0))
}

fn kustomization(dir: &str, files: &Files) -> Result<(String, Node), String> {
    let path = KUSTOMIZATION_FILES
        .iter()
        .map(|f| join(dir, f))
        .find(|p| files.contains_key(p))
        .ok_or_else(|| {
            format!(
                "{} does not exist in the repository",
                join(dir, KUSTOMIZATION_FILES[0])
            )
        })?;
    let root = document(&path, files)?;
    Ok((path, root))
}

/// The `images` entry named `name`, if there is one.
fn kustomize_entry<'a>(root: &'a Node, name: &str) -> Result<Option<&'a Node>, String> {
    let Some(list) = root.get("images") else {
        return Ok(None);
    };
    if !matches!(list, Node::Sequence { .. }) && list.text().is_none_or(|t| !t.is_empty()) {
        return Err("images is not a list".into());
    }
    Ok(list
        .items()
        .iter()
        .find(|item| item.get("name").and_then(Node::text) == Some(name)))
}

/// What `kustomize edit set image name=image` writes: `newName` where the repository
/// differs from `name` (or was set), `newTag` and `digest` as the image has them.
fn write_kustomize_entry(
    edits: &mut Edits<'_>,
    root: &Node,
    entry: &KustomizeImage,
    image: &ImageRef,
) -> Result<(), String> {
    let new_name = image.name.as_deref().filter(|n| *n != entry.name);
    match kustomize_entry(root, &entry.name)? {
        Some(item) => {
            match (new_name, item.get("newName")) {
                (Some(name), _) => edits.set(item, &["newName"], name)?,
                (None, Some(_)) => edits.remove(item, "newName")?,
                (None, None) => {}
            }
            for (key, value) in [("newTag", &image.tag), ("digest", &image.digest)] {
                match value {
                    Some(value) => edits.set(item, &[key], value)?,
                    None => edits.remove(item, key)?,
                }
            }
            Ok(())
        }
        None => {
            let mut fields = vec![("name", entry.name.as_str())];
            fields.extend(new_name.map(|n| ("newName", n)));
            fields.extend(image.tag.as_deref().map(|t| ("newTag", t)));
            fields.extend(image.digest.as_deref().map(|d| ("digest", d)));
            edits.append_item(root, "images", &fields)
        }
    }
}

/// Every document of every manifest the layout reads, with its file.
fn manifests(layout: &Layout, files: &Files) -> Result<Vec<(String, Node)>, String> {
    let mut documents = Vec::new();
    for (path, src) in files.iter().filter(|(path, _)| layout.reads(path)) {
        for document in yaml_edit::parse(src).map_err(|e| format!("{path}: {e}"))? {
            documents.push((path.clone(), document));
        }
    }
    Ok(documents)
}

/// The container of `workload` in the manifests: the named one, else the only one, else
/// the one named like the workload (the same defaults as in the cluster).
fn find_container<'a>(
    dir: &str,
    documents: &'a [(String, Node)],
    workload: &ManifestContainer,
) -> Result<(String, &'a Node), String> {
    let kind = workload.kind.as_str();
    let mut found = documents.iter().filter(|(_, doc)| {
        doc.get("kind").and_then(Node::text) == Some(kind)
            && doc.at(&["metadata", "name"]).and_then(Node::text) == Some(workload.name.as_str())
    });
    let where_ = if dir.is_empty() {
        "the repository".to_owned()
    } else {
        dir.to_owned()
    };
    let (path, doc) = found.next().ok_or_else(|| {
        format!(
            "{kind} {} is not declared in the manifests under {where_}",
            workload.name
        )
    })?;
    if let Some((other, _)) = found.next() {
        return Err(format!(
            "{kind} {} is declared twice under {where_} ({path} and {other})",
            workload.name
        ));
    }
    let pod_spec = crate::controller::workloads::driver(workload.kind).pod_spec();
    let containers = doc
        .at(pod_spec)
        .and_then(|spec| spec.get("containers"))
        .map(Node::items)
        .unwrap_or_default();
    let named = |name: &str| {
        containers
            .iter()
            .find(|c| c.get("name").and_then(Node::text) == Some(name))
    };
    let container = match &workload.container {
        Some(name) => named(name),
        None if containers.len() == 1 => containers.first(),
        None => named(&workload.name),
    };
    let container = container.ok_or_else(|| match &workload.container {
        Some(name) => format!("{path}: {kind} {} has no container {name:?}", workload.name),
        None => format!(
            "{path}: {kind} {} has several containers and none is named {:?}; set the target's container",
            workload.name, workload.name
        ),
    })?;
    Ok((path.clone(), container))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
            .collect()
    }

    fn images(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(a, i)| ((*a).to_owned(), (*i).to_owned()))
            .collect()
    }

    fn kustomize() -> Layout {
        Layout::Kustomize {
            dir: "shop/prod".into(),
            images: vec![
                KustomizeImage {
                    artifact: "web".into(),
                    name: "registry.example.com/shop/web".into(),
                },
                KustomizeImage {
                    artifact: "worker".into(),
                    name: "worker".into(),
                },
            ],
        }
    }

    const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base # shared manifests
images:
  # the storefront
  - name: registry.example.com/shop/web
    newTag: 1.4.1
    digest: sha256:old
";

    #[test]
    fn kustomize_sets_what_kustomize_edit_set_image_would() {
        let layout = kustomize();
        let before = files(&[("shop/prod/kustomization.yaml", KUSTOMIZATION)]);
        let changed = layout
            .write(
                &before,
                &images(&[
                    ("web", "registry.example.com/shop/web:1.4.2"),
                    ("worker", "registry.example.com/shop/worker:1.4.2"),
                ]),
            )
            .unwrap();
        assert_eq!(
            changed["shop/prod/kustomization.yaml"],
            "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../base # shared manifests
images:
  # the storefront
  - name: registry.example.com/shop/web
    newTag: 1.4.2
  - name: worker
    newName: registry.example.com/shop/worker
    newTag: 1.4.2
"
        );
        let declared = layout.read(&changed).unwrap();
        assert_eq!(
            declared["web"].to_string(),
            "registry.example.com/shop/web:1.4.2"
        );
        assert_eq!(
            declared["worker"].to_string(),
            "registry.example.com/shop/worker:1.4.2"
        );
        // Written again, nothing changes.
        assert!(
            layout
                .write(
                    &changed,
                    &images(&[("web", "registry.example.com/shop/web:1.4.2")])
                )
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn kustomize_reads_a_missing_entry_as_the_manifests_image() {
        let layout = kustomize();
        let before = files(&[("shop/prod/kustomization.yml", "resources: [../base]\n")]);
        assert_eq!(
            layout.read(&before).unwrap()["worker"],
            ImageRef {
                name: Some("worker".into()),
                ..ImageRef::default()
            }
        );
        let err = layout.read(&files(&[])).unwrap_err();
        assert_eq!(
            err,
            "shop/prod/kustomization.yaml does not exist in the repository"
        );
    }

    #[test]
    fn helm_sets_each_configured_part() {
        let layout = Layout::Helm {
            file: "shop/prod/values.yaml".into(),
            images: vec![HelmImage {
                artifact: "web".into(),
                reference: None,
                repository: Some("image.repository".into()),
                tag: Some("image.tag".into()),
                digest: None,
            }],
        };
        let src = "replicaCount: 3\nimage:\n  repository: registry.example.com/shop/web\n  tag: \"1.4.1\" # set by Greenlight\n";
        let before = files(&[("shop/prod/values.yaml", src)]);
        let changed = layout
            .write(
                &before,
                &images(&[("web", "registry.example.com/shop/web:1.4.2@sha256:abc")]),
            )
            .unwrap();
        assert_eq!(
            changed["shop/prod/values.yaml"],
            "replicaCount: 3\nimage:\n  repository: registry.example.com/shop/web\n  tag: \"1.4.2\" # set by Greenlight\n"
        );
        let declared = layout.read(&changed).unwrap();
        assert_eq!(
            declared["web"].to_string(),
            "registry.example.com/shop/web:1.4.2"
        );
        let release = ImageRef::parse("registry.example.com/shop/web:1.4.2@sha256:abc");
        assert_eq!(
            release.keep(layout.parts("web")),
            declared["web"],
            "the digest is not stored, so not compared"
        );
        let err = layout
            .read(&files(&[("shop/prod/values.yaml", "image: [a]\n")]))
            .unwrap_err();
        assert_eq!(err, "shop/prod/values.yaml: image is not a mapping");
        let err = layout
            .read(&files(&[("shop/prod/values.yaml", "image:\n  tag: [1]\n")]))
            .unwrap_err();
        assert_eq!(
            err,
            "shop/prod/values.yaml: image.tag is not a single value"
        );
    }

    const MANIFESTS: &str = "\
# the web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: registry.example.com/shop/web:1.4.1 # bumped by Greenlight
        - name: proxy
          image: envoy:1.30
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: report, image: 'registry.example.com/shop/report:1.4.1'}]
";

    #[test]
    fn yaml_sets_the_container_images_of_the_named_workloads() {
        let layout = Layout::Yaml {
            dir: "prod".into(),
            workloads: vec![
                ManifestContainer {
                    kind: WorkloadKind::Deployment,
                    name: "web".into(),
                    container: None,
                    artifact: "web".into(),
                },
                ManifestContainer {
                    kind: WorkloadKind::CronJob,
                    name: "report".into(),
                    container: None,
                    artifact: "report".into(),
                },
            ],
        };
        let before = files(&[
            ("prod/app.yaml", MANIFESTS),
            ("prod/README.md", "not yaml: ["),
        ]);
        let changed = layout
            .write(
                &before,
                &images(&[
                    ("web", "registry.example.com/shop/web:1.4.2"),
                    ("report", "registry.example.com/shop/report:1.4.2"),
                ]),
            )
            .unwrap();
        let expected = MANIFESTS.replace("web:1.4.1 #", "web:1.4.2 #").replace(
            "'registry.example.com/shop/report:1.4.1'",
            "'registry.example.com/shop/report:1.4.2'",
        );
        assert_eq!(changed["prod/app.yaml"], expected);
        assert_eq!(
            layout.read(&changed).unwrap()["report"].to_string(),
            "registry.example.com/shop/report:1.4.2"
        );

        let ambiguous = Layout::Yaml {
            dir: "prod".into(),
            workloads: vec![ManifestContainer {
                kind: WorkloadKind::Deployment,
                name: "web".into(),
                container: Some("sidecar".into()),
                artifact: "web".into(),
            }],
        };
        assert_eq!(
            ambiguous.read(&before).unwrap_err(),
            "prod/app.yaml: Deployment web has no container \"sidecar\""
        );
        let missing = Layout::Yaml {
            dir: "prod".into(),
            workloads: vec![ManifestContainer {
                kind: WorkloadKind::StatefulSet,
                name: "web".into(),
                container: None,
                artifact: "web".into(),
            }],
        };
        assert_eq!(
            missing.read(&before).unwrap_err(),
            "StatefulSet web is not declared in the manifests under prod"
        );
    }
}
