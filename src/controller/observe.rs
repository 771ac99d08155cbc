//! From the objects the API server returns to what the engine reads: Jobs become
//! observations (workloads have their drivers, in `workloads`), Greenlight's own objects become views, and everything cached is
//! trimmed of what the engine never needs (managed fields, last-applied annotations).

use k8s_openapi::{
    api::{batch::v1::Job, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::ResourceExt;

use super::cached_release::CachedRelease;
use crate::{
    api::{Approval, Pipeline},
    engine::{ApprovalView, JobOutcome, JobView, PipelineView, ReleaseView},
};

/// A Job as the engine sees it: running, succeeded or failed, and why.
pub fn job(j: &Job) -> JobView {
    let conditions = j.status.as_ref().and_then(|s| s.conditions.as_ref());
    let holds = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    let (outcome, message) = if let Some(c) = holds("Complete") {
        (
            JobOutcome::Succeeded,
            c.message.clone().filter(|m| !m.is_empty()),
        )
    } else if let Some(c) = holds("Failed") {
        let why = [c.reason.clone(), c.message.clone()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        (
            JobOutcome::Failed,
            Some(if why.is_empty() {
                "the Job failed".into()
            } else {
                why
            }),
        )
    } else {
        (JobOutcome::Running, None)
    };
    JobView {
        cluster: None,
        namespace: j.namespace().unwrap_or_default(),
        name: j.name_any(),
        created: j
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0),
        outcome,
        message,
    }
}

/// Kubernetes keeps at most this much of a termination message; a longer one is cut.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// The termination message of a Job's newest Pod that left one (a failed Job may have
/// retried in several Pods; the last attempt speaks for it), from its first container
/// that wrote one.
pub fn termination_message(pods: &[Pod]) -> Option<String> {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by_key(|p| std::cmp::Reverse(created(&p.metadata)));
    pods.into_iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|c| {
            let message = c.state.as_ref()?.terminated.as_ref()?.message.as_deref()?;
            let message = message.trim();
            (!message.is_empty()).then(|| {
                let mut end = message.len().min(TERMINATION_MESSAGE_LIMIT);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message[..end].to_owned()
            })
        })
    })
}

fn created(meta: &ObjectMeta) -> jiff::Timestamp {
    meta.creation_timestamp
        .as_ref()
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0)
}

/// The Pipeline as the engine sees it.
pub fn pipeline(p: &Pipeline) -> PipelineView {
    PipelineView {
        name: p.name_any(),
        namespace: p.namespace().unwrap_or_default(),
        generation: p.metadata.generation.unwrap_or(0),
        spec: p.spec.clone(),
        status: p.status.clone().unwrap_or_default(),
    }
}

/// A Release as the engine sees it.
pub fn release(r: &CachedRelease) -> ReleaseView {
    ReleaseView {
        name: r.metadata.name.clone().unwrap_or_default(),
        created: created(&r.metadata),
        spec: r.spec.clone(),
        status: r.status.as_ref().map(|s| s.status.clone()),
    }
}

/// An Approval as the engine sees it.
pub fn approval(a: &Approval) -> ApprovalView {
    ApprovalView {
        name: a.name_any(),
        created: created(&a.metadata),
        spec: a.spec.clone(),
        status: a.status.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("test objects are well-formed")
    }

    #[test]
    fn job_outcomes_come_from_conditions() {
        let running: Job = from_json(
            json!({"metadata": {"name": "j", "namespace": "n", "creationTimestamp": "2026-11-21T09:00:00Z"}, "status": {"active": 1}}),
        );
        assert_eq!(job(&running).outcome, JobOutcome::Running);
        assert_eq!(
            job(&running).created,
            "2026-11-21T09:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let done: Job = from_json(
            json!({"metadata": {"name": "j", "namespace": "n"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
        );
        assert_eq!(job(&done).outcome, JobOutcome::Succeeded);
        let failed: Job = from_json(
            json!({"metadata": {"name": "j", "namespace": "n"}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}),
        );
        let view = job(&failed);
        assert_eq!(view.outcome, JobOutcome::Failed);
        assert_eq!(
            view.message.as_deref(),
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
        );
    }

    #[test]
    fn the_newest_pod_with_a_termination_message_speaks_for_the_job() {
        let pod = |name: &str, created: &str, message: &str| -> Pod {
            from_json(json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "status": {"containerStatuses": [{
                    "name": "test", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1, "message": message}}
                }]}
            }))
        };
        let pods = [
            pod("first", "2026-11-21T02:00:00Z", "failed: first attempt"),
            pod("last", "2026-11-21T02:05:00Z", "  failed: last attempt\n"),
            pod("silent", "2026-11-21T02:09:00Z", ""),
        ];
        assert_eq!(
            termination_message(&pods).as_deref(),
            Some("failed: last attempt"),
            "the newest Pod that wrote one, trimmed"
        );
        assert_eq!(termination_message(&pods[2..]), None);
        let long = pod("long", "2026-11-21T02:00:00Z", &"é".repeat(3000));
        let cut = termination_message(&[long]).unwrap();
        assert!(cut.len() <= TERMINATION_MESSAGE_LIMIT && cut.starts_with('é'));
    }
}
