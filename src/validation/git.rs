//! `target.git` checked: a repository URL, a branch and a path Git accepts, one layout
//! whose fields are well formed, and something that says when a commit is deployed.

use std::collections::HashSet;

use super::{
    FieldPath, Problems, SyncSource, ValidGit, ValidTarget,
    names::{dns_label, dns_subdomain},
};
use crate::{api, gitops::layout::Layout};

/// The author of Greenlight's commits unless `target.git.author` says otherwise.
pub const DEFAULT_AUTHOR: (&str, &str) = ("Greenlight", "greenlight@greenlight.dev");

/// Checks `target.git` of a target (at `target_path`) whose workloads are `targets`.
pub fn validate_git(
    target: &api::Target,
    git: &api::GitTarget,
    targets: &[ValidTarget],
    target_path: &FieldPath,
    problems: &mut Problems,
) -> Option<ValidGit> {
    let path = &target_path.field("git");
    let repository = problems.check(&path.field("repository"), repository_url(&git.repository));
    let branch = problems.check(&path.field("branch"), branch_name(&git.branch));
    let dir = problems.check(&path.field("path"), relative_path(git.dir()));
    if let Some(secret) = &git.secret_ref {
        problems.check(
            &path.field("secretRef").field("name"),
            dns_subdomain(&secret.name),
        );
    }
    if let Some(author) = &git.author
        && !author.email.contains('@')
    {
        problems.error(
            &path.field("author").field("email"),
            format!("{:?} is not an email address", author.email),
        );
    }
    let layouts = [
        git.kustomize.is_some(),
        git.helm.is_some(),
        git.yaml.is_some(),
    ];
    if layouts.iter().filter(|set| **set).count() != 1 {
        problems.error(
            path,
            "set exactly one of kustomize, helm and yaml: how the images are written",
        );
        return None;
    }
    if let Some(kustomize) = &git.kustomize {
        let at = path.field("kustomize").field("images");
        unique_artifacts(
            kustomize.images.iter().map(|i| i.artifact.as_str()),
            &at,
            problems,
        );
        for (i, image) in kustomize.images.iter().enumerate() {
            if image.name.trim().is_empty() || image.name.contains(char::is_whitespace) {
                problems.error(
                    &at.index(i).field("name"),
                    format!("{:?} is not an image name", image.name),
                );
            }
        }
    }
    if let Some(helm) = &git.helm {
        let at = path.field("helm");
        if let Some(file) = &helm.values_file {
            problems.check(&at.field("valuesFile"), relative_path(file));
        }
        let images = at.field("images");
        unique_artifacts(
            helm.images.iter().map(|i| i.artifact.as_str()),
            &images,
            problems,
        );
        for (i, image) in helm.images.iter().enumerate() {
            let entry = images.index(i);
            let fields = [
                ("reference", &image.reference),
                ("repository", &image.repository),
                ("tag", &image.tag),
                ("digest", &image.digest),
            ];
            if fields.iter().all(|(_, value)| value.is_none()) {
                problems.error(
                    &entry,
                    "set at least one of reference, repository, tag and digest: where the image goes",
                );
            }
            for (field, value) in fields {
                if let Some(value) = value {
                    problems.check(&entry.field(field), values_path(value));
                }
            }
        }
    }
    let sync = match (&git.argo_cd_application, &git.flux_kustomization) {
        (Some(_), Some(_)) => {
            problems.error(
                path,
                "set argoCDApplication or fluxKustomization, not both: one of them applies the path",
            );
            None
        }
        (Some(app), None) => sync_object(app, &path.field("argoCDApplication"), problems)
            .map(|(namespace, name)| SyncSource::ArgoCd { namespace, name }),
        (None, Some(ks)) => sync_object(ks, &path.field("fluxKustomization"), problems)
            .map(|(namespace, name)| SyncSource::Flux { namespace, name }),
        (None, None) => Some(SyncSource::Workloads),
    };
    let layout = Layout::of(git, target.workloads());
    let artifacts = layout.artifacts();
    if (git.yaml.is_some() || sync == Some(SyncSource::Workloads)) && targets.is_empty() {
        let why = if git.yaml.is_some() {
            "the yaml layout sets the images of the target workloads"
        } else {
            "without argoCDApplication or fluxKustomization, the target workloads say when a commit is deployed"
        };
        problems.error(
            &target_path.field("workloads"),
            format!("{why}: set target.deployments or target.workloads"),
        );
    }
    for target in targets {
        if !artifacts.contains(&target.artifact.as_str()) {
            problems.error(
                &target_path.field("workloads"),
                format!(
                    "{} {} runs artifact {:?}, which target.git does not write (it writes {})",
                    target.kind,
                    target.name,
                    target.artifact,
                    artifacts.join(", ")
                ),
            );
        }
    }
    let author = git.author.as_ref().map_or(
        (DEFAULT_AUTHOR.0.to_owned(), DEFAULT_AUTHOR.1.to_owned()),
        |a| (a.name.clone(), a.email.clone()),
    );
    Some(ValidGit {
        repository: repository?,
        branch: branch?,
        dir: dir?,
        secret: git.secret_ref.as_ref().map(|s| s.name.clone()),
        author,
        layout,
        sync: sync?,
    })
}

fn sync_object(
    object: &api::SyncObject,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<(String, String)> {
    let name = problems.check(&path.field("name"), dns_subdomain(&object.name));
    let namespace = problems.check(&path.field("namespace"), dns_label(&object.namespace));
    name.and(namespace)
        .map(|()| (object.namespace.clone(), object.name.clone()))
}

fn unique_artifacts<'a>(
    artifacts: impl Iterator<Item = &'a str>,
    path: &FieldPath,
    problems: &mut Problems,
) {
    let mut seen = HashSet::new();
    for (i, artifact) in artifacts.enumerate() {
        let at = path.index(i).field("artifact");
        problems.check(
            &at,
            dns_label(artifact).map_err(|e| format!("artifact name: {e}")),
        );
        if !seen.insert(artifact) {
            problems.error(&at, format!("artifact {artifact:?} is listed twice"));
        }
    }
}

/// A URL Greenlight can fetch and push: https, http, ssh (also `user@host:path`), git or
/// file.
fn repository_url(url: &str) -> Result<String, String> {
    const SCHEMES: [&str; 5] = ["https://", "http://", "ssh://", "git://", "file://"];
    let scp_like = !url.contains("://")
        && url.split_once(':').is_some_and(|(host, path)| {
            !host.is_empty() && !host.contains('/') && !path.is_empty()
        });
    let has_scheme = SCHEMES
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len());
    if url.contains(char::is_whitespace) || !(has_scheme || scp_like) {
        return Err(format!(
            "{url:?} is not a Git repository URL: expected https://, ssh://, git@host:path, git:// or file://"
        ));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(
                "credentials do not belong in the URL: put them in the Secret that secretRef names"
                    .into(),
            );
        }
    }
    Ok(url.to_owned())
}

/// A branch name Git accepts (`git check-ref-format --branch`).
fn branch_name(branch: &str) -> Result<String, String> {
    let bad = branch.is_empty()
        || branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if bad {
        return Err(format!("{branch:?} is not a valid Git branch name"));
    }
    Ok(branch
        .strip_prefix("refs/heads/")
        .unwrap_or(branch)
        .to_owned())
}

/// A path inside the repository: relative, without `..`.
fn relative_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        return Err(format!(
            "{path:?} must be a path inside the repository: relative, without .."
        ));
    }
    Ok(path.trim_end_matches('/').to_owned())
}

/// A dotted path of keys in a values file (`image.tag`).
fn values_path(path: &str) -> Result<(), String> {
    if path.split('.').any(|key| key.trim().is_empty()) {
        return Err(format!(
            "{path:?} is not a dotted path of keys such as image.tag"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::PipelineSpec, validation::validate_pipeline};

    fn errors(target: &str) -> Vec<String> {
        let yaml = format!("environments:\n- {{name: prod, accepts: [main], target: {target}}}\n");
        let spec: PipelineSpec = serde_yaml::from_str(&yaml).unwrap();
        let (valid, problems) = validate_pipeline(&spec);
        assert_eq!(valid.is_none(), problems.has_errors());
        problems.errors().map(ToString::to_string).collect()
    }

    const GIT: &str = "repository: https://git.example.com/envs.git, branch: main, path: shop/prod";

    #[test]
    fn a_valid_git_target_reads_its_layout_and_applier() {
        let yaml = format!(
            "environments:\n- {{name: prod, accepts: [main], target: {{namespace: p, git: {{{GIT}, secretRef: {{name: envs}}, helm: {{images: [{{artifact: web, tag: image.tag}}]}}, fluxKustomization: {{name: shop, namespace: flux-system}}}}}}}}\n"
        );
        let spec: PipelineSpec = serde_yaml::from_str(&yaml).unwrap();
        let (valid, problems) = validate_pipeline(&spec);
        let valid = valid.unwrap_or_else(|| panic!("{problems:?}"));
        let git = valid.environments[0].git.as_ref().unwrap();
        assert_eq!(git.dir, "shop/prod");
        assert_eq!(git.secret.as_deref(), Some("envs"));
        assert_eq!(
            git.author,
            (
                "Greenlight".to_owned(),
                "greenlight@greenlight.dev".to_owned()
            )
        );
        assert_eq!(
            git.sync,
            SyncSource::Flux {
                namespace: "flux-system".into(),
                name: "shop".into()
            }
        );
        assert_eq!(git.layout.artifacts(), ["web"]);
    }

    #[test]
    fn each_mistake_is_named_at_its_field() {
        assert_eq!(
            errors(
                "{namespace: p, git: {repository: \"envs\", branch: \"a..b\", path: ../x, author: {name: G, email: nobody}, kustomize: {images: [{artifact: web, name: web}, {artifact: web, name: \"two words\"}]}}}"
            ),
            [
                "error: spec.environments[0].target.git.repository: \"envs\" is not a Git repository URL: expected https://, ssh://, git@host:path, git:// or file://",
                "error: spec.environments[0].target.git.branch: \"a..b\" is not a valid Git branch name",
                "error: spec.environments[0].target.git.path: \"../x\" must be a path inside the repository: relative, without ..",
                "error: spec.environments[0].target.git.author.email: \"nobody\" is not an email address",
                "error: spec.environments[0].target.git.kustomize.images[1].artifact: artifact \"web\" is listed twice",
                "error: spec.environments[0].target.git.kustomize.images[1].name: \"two words\" is not an image name",
                "error: spec.environments[0].target.workloads: without argoCDApplication or fluxKustomization, the target workloads say when a commit is deployed: set target.deployments or target.workloads",
            ]
        );
        assert_eq!(
            errors(&format!(
                "{{namespace: p, deployments: [{{name: api}}], git: {{{GIT}, helm: {{valuesFile: /etc/values.yaml, images: [{{artifact: web}}, {{artifact: api, tag: \"image..tag\"}}]}}}}}}"
            )),
            [
                "error: spec.environments[0].target.git.helm.valuesFile: \"/etc/values.yaml\" must be a path inside the repository: relative, without ..",
                "error: spec.environments[0].target.git.helm.images[0]: set at least one of reference, repository, tag and digest: where the image goes",
                "error: spec.environments[0].target.git.helm.images[1].tag: \"image..tag\" is not a dotted path of keys such as image.tag",
            ]
        );
    }

    #[test]
    fn workloads_must_run_an_artifact_the_repository_writes_and_canaries_need_direct_mode() {
        assert_eq!(
            errors(&format!(
                "{{namespace: p, deployments: [{{name: api}}], git: {{{GIT}, kustomize: {{images: [{{artifact: web, name: web}}]}}}}}}, rollout: {{steps: [{{weight: 10}}]}}"
            )),
            [
                "error: spec.environments[0].target.workloads: Deployment api runs artifact \"api\", which target.git does not write (it writes web)",
                "error: spec.environments[0].rollout: canary steps need workloads Greenlight patches; with target.git, Argo CD or Flux applies the images at once: remove rollout or target.git",
            ]
        );
        assert_eq!(
            errors(&format!(
                "{{namespace: p, git: {{{GIT}, yaml: {{}}, argoCDApplication: {{name: a, namespace: argocd}}}}}}"
            )),
            [
                "error: spec.environments[0].target.workloads: the yaml layout sets the images of the target workloads: set target.deployments or target.workloads"
            ]
        );
    }

    #[test]
    fn accepts_the_url_forms_git_does() {
        for url in [
            "https://git.example.com/platform/envs.git",
            "ssh://git@git.example.com:2222/platform/envs.git",
            "git@github.com:acme/envs.git",
            "git://127.0.0.1:9418/envs.git",
            "file:///tmp/envs.git",
        ] {
            assert_eq!(repository_url(url).as_deref(), Ok(url), "{url}");
        }
        for url in ["envs", "/tmp/envs.git", "https://", "ftp://host/envs.git"] {
            assert!(repository_url(url).is_err(), "{url}");
        }
        assert_eq!(
            repository_url("https://bot:s3cret@git.example.com/envs.git").unwrap_err(),
            "credentials do not belong in the URL: put them in the Secret that secretRef names"
        );
    }

    #[test]
    fn branches_and_paths() {
        assert_eq!(
            branch_name("release/2026-12").as_deref(),
            Ok("release/2026-12")
        );
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a:b"] {
            assert!(branch_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(relative_path("apps/shop/").as_deref(), Ok("apps/shop"));
        assert!(relative_path("../shop").is_err());
        assert!(relative_path("/shop").is_err());
        assert!(values_path("image..tag").is_err());
        assert!(values_path("image.tag").is_ok());
    }
}
