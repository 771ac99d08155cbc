//! The overrides that depend on the Pipeline's status: which failure a retry clears,
//! which release a rollback goes back to, and which canary step a promote-step ends. Pure: the same rules the engine applies, checked
//! before the Approval is created, so a request the engine would ignore fails here in words.

use jiff::Timestamp;

use super::{cluster::not_found, error::PluginError};
use crate::api::{
    Decision, EnvironmentPhase, EnvironmentStatus, Pipeline, PromotionKind, PromotionStage, Release,
};

/// The environment's status, or why there is none.
fn status_of<'p>(
    pipeline: &'p Pipeline,
    environment: &str,
) -> Result<&'p EnvironmentStatus, PluginError> {
    pipeline
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == environment))
        .ok_or_else(|| {
            PluginError::Invalid(format!(
                "Pipeline {} has no status for {environment} yet: the Greenlight controller has \
                 not reconciled it",
                pipeline.metadata.name.as_deref().unwrap_or_default()
            ))
        })
}

fn name_of(release: &Release) -> &str {
    release.metadata.name.as_deref().unwrap_or_default()
}

/// The instant of the failure a retry of `release` in `environment` clears: its failure
/// mark, or its newest failed gate test. It becomes the retry's epoch, so that one retry
/// is asked per failure, and a later failure asks for a new one.
pub fn retry_epoch(
    pipeline: &Pipeline,
    release: &Release,
    environment: &str,
) -> Result<Timestamp, PluginError> {
    let status = status_of(pipeline, environment)?;
    let name = name_of(release);
    let marked = status
        .failed
        .iter()
        .filter(|m| m.release == name)
        .map(|m| m.at.0);
    let tests = status
        .gate_tests
        .iter()
        .filter(|t| t.release == name && !t.passed)
        .map(|t| t.at.0);
    if let Some(at) = marked.chain(tests).max() {
        return Ok(at);
    }
    // A fight over the images of the release it runs: a retry resumes drift repair.
    if let Some(fight) = &status.drift_fight
        && status.current.as_ref().is_some_and(|c| c.release == name)
    {
        return Ok(fight.since.0);
    }
    let state = release
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == environment))
        .map(|e| {
            let message = e
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            format!(" (it is {:?} there{message})", e.state)
        })
        .unwrap_or_default();
    Err(PluginError::Invalid(format!(
        "{name} ({}) has not failed in {environment}{state}: there is nothing to retry",
        release.spec.version
    )))
}

/// The epoch of a canary override of `release` in `environment`, which must be in one of
/// its canary steps there: for `PromoteStep`, the step's start (the engine counts it for
/// the step under way, so each step calls for a new Approval); for `AbortCanary`, the
/// deploy's start.
pub fn canary_epoch(
    pipeline: &Pipeline,
    release: &Release,
    environment: &str,
    decision: Decision,
) -> Result<Timestamp, PluginError> {
    let status = status_of(pipeline, environment)?;
    let name = name_of(release);
    let promotion = status.promotion.as_ref().filter(|p| {
        p.kind == PromotionKind::Deploy
            && p.stage == PromotionStage::Canary
            && p.release.as_deref() == Some(name)
    });
    let Some(promotion) = promotion else {
        let doing = status
            .message
            .as_deref()
            .map(|m| format!(" ({environment}: {m})"))
            .unwrap_or_default();
        return Err(PluginError::Invalid(format!(
            "{name} ({}) is not in a canary step in {environment}{doing}: there is no step to \
             promote or abort",
            release.spec.version
        )));
    };
    Ok(match decision {
        Decision::PromoteStep => promotion.stage_started_at.0,
        _ => promotion.started_at.0,
    })
}

/// The release a rollback goes to, and the epoch that makes the request new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackPlan {
    /// The target Release.
    pub release: String,
    /// Its version.
    pub version: String,
    /// The environment's last change: a rollback counts only if asked after it, so each
    /// change calls for a new Approval.
    pub epoch: Option<Timestamp>,
}

/// Releases verified in the environment: the rollback targets the engine accepts.
fn verified(status: &EnvironmentStatus) -> Vec<(String, String)> {
    status
        .verified_releases()
        .into_iter()
        .map(|(release, version)| (release.to_owned(), version.to_owned()))
        .collect()
}

fn listed(verified: &[(String, String)]) -> String {
    verified
        .iter()
        .map(|(r, v)| format!("{r} ({v})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `rollback PIPELINE --env E [--to RELEASE]` goes. With `--to`, that release, which
/// must have been verified in the environment and still exist; without, the last good
/// release, else the newest release verified there before the current one.
pub fn rollback_target(
    pipeline: &Pipeline,
    environment: &str,
    to: Option<&str>,
    releases: &[Release],
) -> Result<RollbackPlan, PluginError> {
    let pipeline_name = pipeline.metadata.name.as_deref().unwrap_or_default();
    let status = status_of(pipeline, environment)?;
    let current = status.current.as_ref();
    let degraded = status.phase == Some(EnvironmentPhase::Degraded);
    let epoch = status.last_change();
    let verified = verified(status);
    let exists = |name: &str| releases.iter().find(|r| name_of(r) == name);
    let runs_it = |name: &str| current.is_some_and(|c| c.release == name) && !degraded;

    if let Some(to) = to {
        let Some(release) = exists(to) else {
            let names = releases
                .iter()
                .filter(|r| r.spec.pipeline == pipeline_name)
                .map(|r| name_of(r).to_owned())
                .collect();
            let namespace = pipeline.metadata.namespace.as_deref().unwrap_or_default();
            return Err(PluginError::NotFound(format!(
                "--to: {}",
                not_found("Release", to, namespace, Some(names))
            )));
        };
        if release.spec.pipeline != pipeline_name {
            return Err(PluginError::Invalid(format!(
                "--to: Release {to} belongs to Pipeline {}, not {pipeline_name}",
                release.spec.pipeline
            )));
        }
        let version = &release.spec.version;
        if !verified.iter().any(|(r, _)| r == to) {
            let there = if verified.is_empty() {
                "no release was verified there yet".to_owned()
            } else {
                format!("releases verified there: {}", listed(&verified))
            };
            return Err(PluginError::Invalid(format!(
                "{to} ({version}) was never verified in {environment}, so {environment} cannot \
                 be rolled back to it; {there}"
            )));
        }
        if runs_it(to) {
            return Err(PluginError::Invalid(format!(
                "{environment} already runs {to} ({version}): there is nothing to roll back"
            )));
        }
        return Ok(RollbackPlan {
            release: to.to_owned(),
            version: version.clone(),
            epoch,
        });
    }

    let target = verified.iter().find(|(release, _)| {
        !runs_it(release)
            && !status.failed.iter().any(|m| m.release == *release)
            && exists(release).is_some()
    });
    match (target, current) {
        (Some((release, version)), _) => Ok(RollbackPlan {
            release: release.clone(),
            version: version.clone(),
            epoch,
        }),
        (None, None) => Err(PluginError::Invalid(format!(
            "{environment} runs its baseline and no release was ever verified there: there is \
             nothing to roll back to"
        ))),
        (None, Some(current)) => Err(PluginError::Invalid(format!(
            "{environment} has nothing to roll back to: no release other than the one it runs, \
             {} ({}), was verified there and still exists (before it, {environment} ran only \
             its baseline, which a rollback cannot name)",
            current.release, current.version
        ))),
    }
}

#[cfg(test)]
mod tests {

    use super::{
        super::fixtures::{at, release},
        *,
    };
    use crate::api::{
        GateTestRecord, PipelineSpec, PipelineStatus, PromotionRecord, PromotionResult,
        ReleaseMark, ReleaseRef,
    };

    fn record(
        release: &str,
        version: &str,
        result: PromotionResult,
        finished: &str,
    ) -> PromotionRecord {
        PromotionRecord {
            release: release.into(),
            version: version.into(),
            result,
            started_at: None,
            finished_at: Some(at(finished)),
            reason: None,
            requested_by: None,
        }
    }

    fn reference(release: &str, version: &str, since: &str) -> ReleaseRef {
        ReleaseRef {
            release: release.into(),
            version: version.into(),
            since: Some(at(since)),
        }
    }

    fn pipeline(prod: EnvironmentStatus) -> Pipeline {
        let mut pipeline = Pipeline::new(
            "shop",
            PipelineSpec {
                suspend: false,
                history_limit: None,
                environments: vec![],
            },
        );
        pipeline.metadata.namespace = Some("shop".into());
        pipeline.status = Some(PipelineStatus {
            environments: vec![EnvironmentStatus {
                name: "prod".into(),
                ..prod
            }],
            ..PipelineStatus::default()
        });
        pipeline
    }

    fn releases() -> Vec<Release> {
        vec![
            release("shop-1-4-0", "1.4.0", "shop"),
            release("shop-1-4-1", "1.4.1", "shop"),
            release("shop-1-4-2", "1.4.2", "shop"),
            release("other-9", "9", "other"),
        ]
    }

    /// prod runs 1.4.2, verified; 1.4.1 and 1.4.0 were verified before it.
    fn healthy_prod() -> EnvironmentStatus {
        EnvironmentStatus {
            current: Some(reference("shop-1-4-2", "1.4.2", "2026-11-21T10:00:00Z")),
            last_good: Some(reference("shop-1-4-2", "1.4.2", "2026-11-21T10:05:00Z")),
            history: vec![
                record(
                    "shop-1-4-2",
                    "1.4.2",
                    PromotionResult::Succeeded,
                    "2026-11-21T10:05:00Z",
                ),
                record(
                    "shop-1-4-1",
                    "1.4.1",
                    PromotionResult::Succeeded,
                    "2026-11-20T10:05:00Z",
                ),
                record(
                    "shop-1-4-0",
                    "1.4.0",
                    PromotionResult::Succeeded,
                    "2026-11-19T10:05:00Z",
                ),
            ],
            ..EnvironmentStatus::default()
        }
    }

    #[test]
    fn without_to_a_healthy_environment_goes_back_to_the_release_before_the_current_one() {
        let plan = rollback_target(&pipeline(healthy_prod()), "prod", None, &releases()).unwrap();
        assert_eq!(
            plan,
            RollbackPlan {
                release: "shop-1-4-1".into(),
                version: "1.4.1".into(),
                epoch: Some("2026-11-21T10:05:00Z".parse().unwrap()),
            }
        );
    }

    #[test]
    fn without_to_the_last_good_release_wins_while_another_one_is_deployed() {
        let mut prod = healthy_prod();
        prod.current = Some(reference("shop-1-4-3", "1.4.3", "2026-11-22T10:00:00Z"));
        prod.phase = Some(EnvironmentPhase::Verifying);
        let plan = rollback_target(&pipeline(prod), "prod", None, &releases()).unwrap();
        assert_eq!(plan.release, "shop-1-4-2");
        assert_eq!(plan.epoch, Some("2026-11-22T10:00:00Z".parse().unwrap()));
    }

    #[test]
    fn without_to_releases_that_failed_or_were_deleted_are_skipped() {
        let mut prod = healthy_prod();
        prod.failed.push(ReleaseMark {
            release: "shop-1-4-1".into(),
            at: at("2026-11-21T11:00:00Z"),
            reason: "rolled back by bob".into(),
        });
        let only_old = vec![release("shop-1-4-0", "1.4.0", "shop")];
        let plan = rollback_target(&pipeline(prod.clone()), "prod", None, &releases()).unwrap();
        assert_eq!(plan.release, "shop-1-4-0");
        let plan = rollback_target(&pipeline(healthy_prod()), "prod", None, &only_old).unwrap();
        assert_eq!(plan.release, "shop-1-4-0");
    }

    #[test]
    fn only_the_baseline_before_the_current_release_means_nothing_to_roll_back_to() {
        let mut prod = healthy_prod();
        prod.history.truncate(1);
        let error = rollback_target(&pipeline(prod), "prod", None, &releases())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "prod has nothing to roll back to: no release other than the one it runs, \
                 shop-1-4-2 (1.4.2), was verified there"
            ),
            "{error}"
        );
        let error = rollback_target(
            &pipeline(EnvironmentStatus::default()),
            "prod",
            None,
            &releases(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("prod runs its baseline"), "{error}");
    }

    #[test]
    fn to_must_name_a_release_verified_there_that_it_does_not_run() {
        let prod = pipeline(healthy_prod());
        let plan = rollback_target(&prod, "prod", Some("shop-1-4-0"), &releases()).unwrap();
        assert_eq!(
            (plan.release.as_str(), plan.version.as_str()),
            ("shop-1-4-0", "1.4.0")
        );

        let mut unverified = releases();
        unverified.push(release("shop-1-3-9", "1.3.9", "shop"));
        let error = rollback_target(&prod, "prod", Some("shop-1-3-9"), &unverified)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "shop-1-3-9 (1.3.9) was never verified in prod, so prod cannot be rolled back to it; \
             releases verified there: shop-1-4-2 (1.4.2), shop-1-4-1 (1.4.1), shop-1-4-0 (1.4.0)"
        );
        let error = rollback_target(&prod, "prod", Some("shop-1-4-2"), &releases())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "prod already runs shop-1-4-2 (1.4.2): there is nothing to roll back"
        );
        let error = rollback_target(&prod, "prod", Some("other-9"), &releases())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "--to: Release other-9 belongs to Pipeline other, not shop"
        );
        let error = rollback_target(&prod, "prod", Some("shop-1-4-9"), &releases())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--to: no Release \"shop-1-4-9\" in namespace shop"),
            "{error}"
        );
        assert!(error.contains("shop-1-4-2"), "{error}");
        assert!(!error.contains("other-9"), "{error}");
    }

    #[test]
    fn a_degraded_environment_may_redeploy_its_last_good_release() {
        let mut prod = healthy_prod();
        prod.phase = Some(EnvironmentPhase::Degraded);
        let plan = rollback_target(&pipeline(prod), "prod", None, &releases()).unwrap();
        assert_eq!(plan.release, "shop-1-4-2");
    }

    #[test]
    fn a_retry_is_bound_to_the_newest_failure() {
        let mut prod = healthy_prod();
        prod.failed.push(ReleaseMark {
            release: "shop-1-4-3".into(),
            at: at("2026-11-22T10:20:00Z"),
            reason: "verification failed".into(),
        });
        prod.gate_tests.push(GateTestRecord {
            release: "shop-1-4-3".into(),
            test: "smoke".into(),
            attempt: 0,
            passed: false,
            at: at("2026-11-22T09:00:00Z"),
            message: None,
        });
        let failed = release("shop-1-4-3", "1.4.3", "shop");
        let epoch = retry_epoch(&pipeline(prod), &failed, "prod").unwrap();
        assert_eq!(epoch, "2026-11-22T10:20:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn a_retry_of_the_current_release_during_a_drift_fight_resumes_repair() {
        let mut prod = healthy_prod();
        let current = prod.current.clone().unwrap().release;
        prod.drift_fight = Some(crate::api::DriftFight {
            since: at("2026-11-22T11:00:00Z"),
            managers: vec!["argocd-controller".into()],
            drifted: vec![],
        });
        let running = release(&current, "1.4.2", "shop");
        let epoch = retry_epoch(&pipeline(prod), &running, "prod").unwrap();
        assert_eq!(epoch, "2026-11-22T11:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn a_retry_of_a_release_that_did_not_fail_is_refused() {
        let healthy = release("shop-1-4-2", "1.4.2", "shop");
        let error = retry_epoch(&pipeline(healthy_prod()), &healthy, "prod")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "shop-1-4-2 (1.4.2) has not failed in prod: there is nothing to retry"
        );
        let error = retry_epoch(&pipeline(healthy_prod()), &healthy, "staging")
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no status for staging yet"), "{error}");
    }

    #[test]
    fn a_canary_override_is_bound_to_the_step_or_the_deploy_under_way() {
        let mut prod = healthy_prod();
        let canary = release("shop-1-4-3", "1.4.3", "shop");
        let error = canary_epoch(
            &pipeline(prod.clone()),
            &canary,
            "prod",
            Decision::PromoteStep,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("shop-1-4-3 (1.4.3) is not in a canary step in prod"),
            "{error}"
        );
        prod.promotion = Some(
            serde_json::from_value(serde_json::json!({
                "kind": "Deploy", "release": "shop-1-4-3", "version": "1.4.3",
                "stage": "Canary", "step": 1,
                "startedAt": "2026-11-22T10:00:00Z", "stageStartedAt": "2026-11-22T10:07:00Z",
                "attempt": 0,
            }))
            .unwrap(),
        );
        let pipeline = pipeline(prod);
        let epoch = |decision| canary_epoch(&pipeline, &canary, "prod", decision).unwrap();
        assert_eq!(
            epoch(Decision::PromoteStep),
            "2026-11-22T10:07:00Z".parse::<Timestamp>().unwrap(),
            "each step calls for its own Approval"
        );
        assert_eq!(
            epoch(Decision::AbortCanary),
            "2026-11-22T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        let other = release("shop-1-4-2", "1.4.2", "shop");
        assert!(canary_epoch(&pipeline, &other, "prod", Decision::AbortCanary).is_err());
    }
}
