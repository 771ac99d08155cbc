//! CronJobs: the image of the Job template. A CronJob has no pods of its own to roll out:
//! its new image is rolled out as soon as the API server accepted it, and its next Job
//! runs it (nightly and batch workloads promote with the rest).

use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use serde::{Deserialize, Serialize};

use super::Driver;
use crate::controller::slim::{
    PodTemplate, containers, identity_and_image_managers, image_managers,
};
use crate::engine::{RolloutState, WorkloadKind, WorkloadView};

/// The CronJob driver.
pub struct CronJobs;

impl Driver for CronJobs {
    type Object = CachedCronJob;
    const KIND: WorkloadKind = WorkloadKind::CronJob;
    const POD_SPEC: &'static [&'static str] = &["spec", "jobTemplate", "spec", "template", "spec"];

    fn view(c: &CachedCronJob) -> WorkloadView {
        let template = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .map(|s| &s.template);
        // No controller reports an observed generation: the spec the API server holds is
        // the one the next Job is made from.
        let generation = c.metadata.generation.unwrap_or(0);
        WorkloadView {
            cluster: None,
            kind: WorkloadKind::CronJob,
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            name: c.metadata.name.clone().unwrap_or_default(),
            containers: containers(template),
            generation,
            observed_generation: generation,
            rollout: RolloutState::Complete,
            available: true,
            replicas: None,
            image_managers: image_managers(&c.metadata),
        }
    }
}

/// A CronJob as cached: identity and the containers of its Job template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedCronJob {
    /// Identity only.
    #[serde(default, deserialize_with = "identity_and_image_managers")]
    pub metadata: ObjectMeta,
    /// `spec`, its Job template only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CronJobSpec>,
}

/// `spec.jobTemplate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    /// `spec.jobTemplate`.
    #[serde(default)]
    pub job_template: JobTemplate,
}

/// `spec.jobTemplate`, its pod template only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobTemplate {
    /// `spec.jobTemplate.spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<JobSpec>,
}

/// `spec.jobTemplate.spec`, its pod template only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// `spec.jobTemplate.spec.template`.
    #[serde(default)]
    pub template: PodTemplate,
}

crate::controller::slim::cached_resource!(CachedCronJob, "batch", "v1", "CronJob", "cronjobs");

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_job_templates_image_is_rolled_out_once_accepted() {
        let object: CachedCronJob = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly-apply", "namespace": "infra", "generation": 5},
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "apply", "image": "infra/apply:2026.12.01", "args": ["apply"]}]}}}}},
            "status": {"lastScheduleTime": "2026-12-01T01:00:00Z"}
        }))
        .expect("test objects are well-formed");
        let view = CronJobs::view(&object);
        assert_eq!(view.image_of("apply"), Some("infra/apply:2026.12.01"));
        assert!(view.rolled_out() && view.available);
    }
}
