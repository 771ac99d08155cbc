//! Checks between objects: a Release against its Pipeline, an Approval against its Release.

use super::{
    model::ValidPipeline,
    problems::{FieldPath, Problems},
};
use crate::api::{ApprovalSpec, ReleaseSpec};

/// Checks a Release against its (already validated) Pipeline: every artifact a target
/// deploys is present, and the release can enter at least one environment.
pub fn validate_release_references(
    release: &ReleaseSpec,
    pipeline_name: &str,
    pipeline: &ValidPipeline,
) -> Problems {
    let mut problems = Problems::new();
    let artifacts = FieldPath::new("spec").field("artifacts");
    let mut missing: Vec<(&str, Vec<String>)> = Vec::new();
    for env in &pipeline.environments {
        for target in &env.targets {
            if release.artifacts.contains_key(&target.artifact) {
                continue;
            }
            let place = if target.kind == crate::api::WorkloadKind::Deployment {
                format!("{}/{}", env.name, target.name)
            } else {
                format!("{}/{} {}", env.name, target.kind, target.name)
            };
            match missing
                .iter_mut()
                .find(|(name, _)| *name == target.artifact)
            {
                Some((_, places)) => places.push(place),
                None => missing.push((&target.artifact, vec![place])),
            }
        }
    }
    for (artifact, places) in missing {
        problems.error(
            &artifacts,
            format!(
                "missing artifact {artifact:?}, which Pipeline {pipeline_name:?} deploys to {}",
                places.join(", ")
            ),
        );
    }
    let enters = pipeline
        .environments
        .iter()
        .any(|env| env.accepts_ref(&release.source.git_ref));
    if !enters {
        let globs: Vec<&str> = pipeline
            .environments
            .iter()
            .flat_map(|e| e.accepts.iter().map(|g| g.pattern.as_str()))
            .collect();
        problems.warning(
            &FieldPath::new("spec").field("source").field("ref"),
            format!(
                "{:?} matches no environment's accepts ({}); the Release would get Accepted=False (NoMatchingEnvironment)",
                release.source.git_ref,
                globs.join(", ")
            ),
        );
    }
    problems
}

/// Checks an Approval against the Pipeline of the Release it names.
pub fn validate_approval_references(
    approval: &ApprovalSpec,
    pipeline_name: &str,
    pipeline: &ValidPipeline,
) -> Problems {
    let mut problems = Problems::new();
    if pipeline.environment(&approval.environment).is_none() {
        let names = pipeline.environments.iter().map(|e| e.name.as_str());
        let hint = crate::suggest::closest(&approval.environment, names.clone())
            .map(|best| format!("did you mean {best:?}?"))
            .unwrap_or_else(|| format!("expected one of {}", names.collect::<Vec<_>>().join(", ")));
        problems.error(
            &FieldPath::new("spec").field("environment"),
            format!(
                "Pipeline {pipeline_name:?} has no environment {:?}: {hint}",
                approval.environment
            ),
        );
    }
    problems
}
