//! Builds a simulation from manifest files, as `greenlight simulate` reads them.

use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::Value;

use super::{
    run::{Options, Simulation},
    world::Failure,
};
use crate::api::{Approval, ApprovalSpec, Decision, Pipeline, Release};

/// What `greenlight simulate` was asked.
#[derive(Clone, Debug)]
pub struct Request {
    /// Manifest files and directories.
    pub files: Vec<PathBuf>,
    /// The pipeline to simulate when the files hold several.
    pub pipeline: Option<String>,
    /// Virtual start time.
    pub start: Timestamp,
    /// Failures to inject.
    pub failures: Vec<Failure>,
    /// Approvals to add: (release, environment, user).
    pub approvals: Vec<(String, String, String)>,
}

/// The loaded scenario: the simulation, and the pipeline's last environment (the one
/// "reaching prod" means).
pub struct Loaded {
    /// The simulation, at its start.
    pub simulation: Simulation,
    /// `namespace/name` of the pipeline.
    pub title: String,
    /// The last environment in promotion order.
    pub last_environment: String,
}

/// Reads the manifests (they must pass `greenlight check`) and sets up the simulation.
pub fn load(request: &Request, options: Options) -> Result<Loaded, String> {
    let report = crate::check::check_paths(&request.files);
    if report.errors() > 0 {
        return Err(format!(
            "the manifests have errors; fix them first:\n{}",
            report.render()
        ));
    }
    let mut pipelines: Vec<Pipeline> = Vec::new();
    let mut releases: Vec<(Release, Option<Timestamp>)> = Vec::new();
    let mut approvals: Vec<(Approval, Option<Timestamp>)> = Vec::new();
    for file in crate::check::load::collect_files(&request.files)? {
        for document in crate::check::load::read_documents(&file)? {
            let Ok(value) = document.content else {
                continue;
            };
            let created = value
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| t.parse().ok());
            match value.get("kind").and_then(Value::as_str) {
                Some("Pipeline") => pipelines.push(parse(value)?),
                Some("Release") => releases.push((parse(value)?, created)),
                Some("Approval") => approvals.push((parse(value)?, created)),
                _ => {}
            }
        }
    }
    let pipeline = match (&request.pipeline, pipelines.len()) {
        (Some(name), _) => pipelines
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| format!("no Pipeline named {name:?} in the files"))?,
        (None, 1) => pipelines.remove(0),
        (None, 0) => return Err("the files hold no Pipeline".into()),
        (None, _) => {
            return Err("the files hold several Pipelines: choose one with --pipeline".into());
        }
    };
    let name = pipeline.metadata.name.clone().unwrap_or_default();
    let namespace = pipeline
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let (valid, _) = crate::validation::validate_pipeline(&pipeline.spec);
    let valid = valid.ok_or("the Pipeline is invalid")?;
    let last_environment = valid
        .topological_order
        .last()
        .map(|&i| valid.environments[i].name.clone())
        .unwrap_or_default();
    let mut simulation = Simulation::new(pipeline, request.start, options);
    // Releases without a creation time arrive a minute apart, in file order.
    for (i, (release, created)) in releases
        .into_iter()
        .filter(|(r, _)| r.spec.pipeline == name)
        .enumerate()
    {
        let at =
            created.unwrap_or_else(|| request.start + jiff::SignedDuration::from_mins(i as i64));
        simulation.add_release(release, at);
    }
    for (approval, created) in approvals {
        simulation.add_approval(approval, created.unwrap_or(request.start));
    }
    for (i, (release, environment, user)) in request.approvals.iter().enumerate() {
        let env = valid.environment(environment).ok_or_else(|| {
            format!("--approve: Pipeline {name:?} has no environment {environment:?}")
        })?;
        // The approver is taken to be in every group the environment's rules name.
        let groups: Vec<String> = env
            .gates
            .approvals
            .iter()
            .flat_map(|r| r.groups.clone())
            .collect();
        let spec = ApprovalSpec {
            release: release.clone(),
            environment: environment.clone(),
            decision: Decision::Approve,
            approver: user.clone(),
            groups,
            comment: Some("--approve".into()),
        };
        let mut approval = Approval::new(&format!("simulated-approval-{i}"), spec);
        approval.metadata.namespace = Some(namespace.clone());
        simulation.add_approval(approval, request.start);
    }
    Ok(Loaded {
        simulation,
        title: format!("Simulation of Pipeline {namespace}/{name}"),
        last_environment,
    })
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Parses `RELEASE@ENV:user`.
pub fn parse_approval(text: &str) -> Result<(String, String, String), String> {
    let (target, user) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not RELEASE@ENV:user"))?;
    let (release, environment) = target
        .rsplit_once('@')
        .ok_or_else(|| format!("{text:?} is not RELEASE@ENV:user"))?;
    if release.is_empty() || environment.is_empty() || user.is_empty() {
        return Err(format!("{text:?} is not RELEASE@ENV:user"));
    }
    Ok((release.into(), environment.into(), user.into()))
}
