//! Builds the Approval a command creates, from the objects as they are and the caller's
//! identity, and says in one line what it means. Pure: no client.

use super::{error::PluginError, identity::Identity, names};
use crate::api::{
    Approval, ApprovalSpec, Decision, Environment, Pipeline, Release, SelfApproval, limits,
};

/// The environment `name` of `pipeline`; the error names the environments it has.
pub fn environment<'p>(pipeline: &'p Pipeline, name: &str) -> Result<&'p Environment, PluginError> {
    if let Some(environment) = pipeline.spec.environments.iter().find(|e| e.name == name) {
        return Ok(environment);
    }
    let known: Vec<&str> = pipeline
        .spec
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let hint = crate::suggest::closest(name, known.iter().copied())
        .map(|close| format!(" (did you mean {close:?}?)"))
        .unwrap_or_default();
    Err(PluginError::Invalid(format!(
        "Pipeline {} has no environment {name:?}{hint}; its environments are: {}",
        pipeline.metadata.name.as_deref().unwrap_or_default(),
        known.join(", ")
    )))
}

/// What the caller asks for.
#[derive(Clone, Debug)]
pub struct Ask<'a> {
    /// The Release the decision is bound to (for a rollback: the target).
    pub release: &'a Release,
    /// The environment, already checked to exist in the Pipeline.
    pub environment: &'a Environment,
    /// The decision.
    pub decision: Decision,
    /// `--comment`.
    pub comment: Option<String>,
    /// What makes this request new (see [`names::approval_name`]).
    pub epoch: Option<String>,
}

/// The Approval `identity` creates for `ask`: the approver is the caller, and the groups
/// are the caller's groups that the environment's approval rules name, so the approval
/// counts and the admission policy (approver is the user, groups are the user's) accepts it.
pub fn build(identity: &Identity, ask: &Ask<'_>) -> Result<Approval, PluginError> {
    if let Some(comment) = &ask.comment {
        let length = comment.chars().count();
        if length > limits::TEXT {
            return Err(PluginError::Invalid(format!(
                "--comment has {length} characters; an Approval's comment holds at most {}",
                limits::TEXT
            )));
        }
    }
    let release = ask.release.metadata.name.clone().unwrap_or_default();
    let rules = ask
        .environment
        .gates
        .as_ref()
        .map(|g| g.approvals.as_slice())
        .unwrap_or_default();
    let spec = ApprovalSpec {
        release: release.clone(),
        environment: ask.environment.name.clone(),
        decision: ask.decision,
        approver: identity.username.clone(),
        groups: identity.groups_named_by(rules),
        comment: ask.comment.clone().filter(|c| !c.is_empty()),
    };
    let name = names::approval_name(
        &release,
        &ask.environment.name,
        ask.decision,
        &identity.username,
        ask.epoch.as_deref(),
    );
    let mut approval = Approval::new(&name, spec);
    approval.metadata.namespace = ask.release.metadata.namespace.clone();
    Ok(approval)
}

/// `alice approves shop-1-4-2 (1.4.2) for prod as release-managers`.
pub fn describe(approval: &Approval, version: &str) -> String {
    let spec = &approval.spec;
    let release = format!("{} ({version})", spec.release);
    let (who, env) = (&spec.approver, &spec.environment);
    let sentence = match spec.decision {
        Decision::Approve => format!("{who} approves {release} for {env}"),
        Decision::Reject => format!("{who} rejects {release} for {env}"),
        Decision::PromoteNow => format!(
            "{who} asks to promote {release} to {env} now: it ignores only the schedule gate, \
             every other gate still applies"
        ),
        Decision::Retry => format!(
            "{who} asks to retry {release} in {env}: its failure there is cleared and its \
             failed gate tests run again"
        ),
        Decision::Rollback => format!("{who} asks to roll {env} back to {release}"),
        Decision::PromoteStep => format!(
            "{who} asks to end the canary step of {release} in {env} now, without the rest \
             of its pause"
        ),
        Decision::AbortCanary => format!(
            "{who} asks to abort the canary of {release} in {env}: its traffic goes back to \
             the stable release and it is Failed there"
        ),
    };
    if spec.groups.is_empty() {
        sentence
    } else {
        format!("{sentence} (as {})", spec.groups.join(", "))
    }
}

/// Things worth knowing before the Approval is created: it will not count, or changes
/// nothing. Printed as warnings; the Approval is still created.
pub fn warnings(identity: &Identity, ask: &Ask<'_>) -> Vec<String> {
    let env = &ask.environment.name;
    let gates = ask.environment.gates.clone().unwrap_or_default();
    let user = &identity.username;
    let mut out = Vec::new();
    match ask.decision {
        Decision::Approve if gates.approvals.is_empty() => out.push(format!(
            "{env} has no approval rules: this approval changes nothing there"
        )),
        Decision::Approve => {
            if !identity.can_count_for(&gates.approvals) {
                let named: Vec<String> = gates
                    .approvals
                    .iter()
                    .flat_map(|r| r.groups.iter().chain(&r.users).cloned())
                    .collect();
                out.push(format!(
                    "{user} is in none of the groups and is none of the users that {env}'s \
                     approval rules name ({}): this approval will not count",
                    named.join(", ")
                ));
            }
            if !gates.allow_self_approval
                && let Some(own) = ask.release.spec.self_approval(user)
            {
                let who = match own {
                    SelfApproval::Author => format!("{user} is the release's author"),
                    SelfApproval::Requester => format!("{user} requested the release"),
                };
                out.push(format!(
                    "{who} and {env} does not allow self-approval: this approval will not count"
                ));
            }
        }
        Decision::PromoteNow if gates.schedule.is_empty() => out.push(format!(
            "{env} has no schedule gate: promoting now changes nothing there"
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApprovalRule, Gates, PipelineSpec, Target};

    fn pipeline() -> Pipeline {
        let env = |name: &str, gates: Option<Gates>| Environment {
            name: name.into(),
            upstream: None,
            accepts: vec![],
            target: Target {
                namespace: format!("shop-{name}"),
                deployments: vec![],
                workloads: vec![],
                cluster: None,
                git: None,
            },
            pre_deploy: vec![],
            verify: None,
            rollout: None,
            rollback: None,
            gates,
            pin: None,
        };
        let prod_gates = Gates {
            approvals: vec![ApprovalRule {
                name: "release-managers".into(),
                count: 2,
                groups: vec!["release-managers".into(), "cab".into()],
                users: vec![],
            }],
            ..Gates::default()
        };
        let mut pipeline = Pipeline::new(
            "shop",
            PipelineSpec {
                suspend: false,
                history_limit: None,
                environments: vec![
                    env("dev", None),
                    env("staging", None),
                    env("prod", Some(prod_gates)),
                ],
            },
        );
        pipeline.metadata.namespace = Some("shop".into());
        pipeline
    }

    fn release() -> Release {
        let mut release = super::super::fixtures::release("shop-1-4-2", "1.4.2", "shop");
        release.spec.artifacts = [(
            "api".to_string(),
            "registry.example.com/api:1.4.2".to_string(),
        )]
        .into();
        release.spec.source.git_ref = "release/v1.4.2".into();
        release.spec.source.author = Some("carol".into());
        release
    }

    fn alice() -> Identity {
        Identity {
            username: "alice".into(),
            groups: vec!["system:authenticated".into(), "release-managers".into()],
        }
    }

    #[test]
    fn an_approval_carries_the_caller_and_only_the_groups_the_rules_name() {
        let (pipeline, release) = (pipeline(), release());
        let ask = Ask {
            release: &release,
            environment: environment(&pipeline, "prod").unwrap(),
            decision: Decision::Approve,
            comment: Some("CAB-1234 ok".into()),
            epoch: None,
        };
        let approval = build(&alice(), &ask).unwrap();
        assert_eq!(
            approval.metadata.name.as_deref(),
            Some("shop-1-4-2-prod-approve-alice")
        );
        assert_eq!(approval.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            approval.spec,
            ApprovalSpec {
                release: "shop-1-4-2".into(),
                environment: "prod".into(),
                decision: Decision::Approve,
                approver: "alice".into(),
                groups: vec!["release-managers".into()],
                comment: Some("CAB-1234 ok".into()),
            }
        );
        assert_eq!(
            describe(&approval, "1.4.2"),
            "alice approves shop-1-4-2 (1.4.2) for prod (as release-managers)"
        );
        assert!(warnings(&alice(), &ask).is_empty());
    }

    #[test]
    fn an_unknown_environment_names_the_ones_that_exist() {
        let pipeline = pipeline();
        let error = environment(&pipeline, "prd").unwrap_err().to_string();
        assert_eq!(
            error,
            "Pipeline shop has no environment \"prd\" (did you mean \"prod\"?); its environments \
             are: dev, staging, prod"
        );
    }

    #[test]
    fn an_approval_that_cannot_count_is_warned_about() {
        let (pipeline, release) = (pipeline(), release());
        let outsider = Identity {
            username: "carol".into(),
            groups: vec!["devs".into()],
        };
        let ask = Ask {
            release: &release,
            environment: environment(&pipeline, "prod").unwrap(),
            decision: Decision::Approve,
            comment: None,
            epoch: None,
        };
        let warned = warnings(&outsider, &ask);
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].contains("none of the groups"), "{}", warned[0]);
        assert!(
            warned[1].contains("carol is the release's author"),
            "{}",
            warned[1]
        );
        assert!(build(&outsider, &ask).unwrap().spec.groups.is_empty());
    }

    #[test]
    fn promote_now_without_a_schedule_is_warned_about() {
        let (pipeline, release) = (pipeline(), release());
        let ask = Ask {
            release: &release,
            environment: environment(&pipeline, "staging").unwrap(),
            decision: Decision::PromoteNow,
            comment: None,
            epoch: None,
        };
        assert_eq!(
            warnings(&alice(), &ask),
            ["staging has no schedule gate: promoting now changes nothing there"]
        );
    }

    #[test]
    fn a_comment_longer_than_the_schema_allows_is_refused() {
        let (pipeline, release) = (pipeline(), release());
        let ask = Ask {
            release: &release,
            environment: environment(&pipeline, "prod").unwrap(),
            decision: Decision::Reject,
            comment: Some("x".repeat(limits::TEXT + 1)),
            epoch: None,
        };
        let error = build(&alice(), &ask).unwrap_err().to_string();
        assert!(error.contains("at most 4096"), "{error}");
    }
}
