//! Deterministic Job names and the JobSpec Greenlight submits.
//!
//! The name is a function of (pipeline, environment, release, purpose, step, attempt), so
//! a repeated decision asks for the same Job and "already exists" means "already started".

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Map, Value, json};

use super::decision::JobRequest;

/// Why a Job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPurpose {
    /// `preDeploy`: before images change.
    PreDeploy,
    /// `verify.tests`: after the rollout.
    Verify,
    /// `gates.tests`: before promotion, against the upstream environment.
    Gate,
}

impl JobPurpose {
    /// The label value and name part.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreDeploy => "pre-deploy",
            Self::Verify => "verify",
            Self::Gate => "gate",
        }
    }
}

/// Label keys set on every Job (and its pods).
pub mod labels {
    /// The Pipeline's name.
    pub const PIPELINE: &str = "greenlight.dev/pipeline";
    /// The Pipeline's namespace: Jobs may run in other namespaces, and a watch maps each
    /// back to its Pipeline by these two labels.
    pub const PIPELINE_NAMESPACE: &str = "greenlight.dev/pipeline-namespace";
    /// The environment.
    pub const ENVIRONMENT: &str = "greenlight.dev/environment";
    /// The Release's name.
    pub const RELEASE: &str = "greenlight.dev/release";
    /// `pre-deploy`, `verify` or `gate`.
    pub const PURPOSE: &str = "greenlight.dev/purpose";
    /// The step's name.
    pub const STEP: &str = "greenlight.dev/step";
    /// Who manages the object.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
}

/// Which Job: everything its name is derived from.
#[derive(Clone, Copy, Debug)]
pub struct JobKey<'a> {
    /// Pipeline name.
    pub pipeline: &'a str,
    /// Environment name.
    pub environment: &'a str,
    /// Release name.
    pub release: &'a str,
    /// Purpose.
    pub purpose: JobPurpose,
    /// Step name.
    pub step: &'a str,
    /// Retry attempt.
    pub attempt: u32,
}

/// FNV-1a: a small stable hash, so names do not depend on the Rust version.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

impl JobKey<'_> {
    /// A DNS label of at most 63 characters: readable parts, then a hash of all of them.
    pub fn name(&self) -> String {
        let attempt = self.attempt.to_string();
        let hash = fnv1a(&[
            self.pipeline,
            self.environment,
            self.release,
            self.purpose.as_str(),
            self.step,
            &attempt,
        ]);
        let suffix = format!("{:010x}", hash & 0xff_ffff_ffff);
        let readable = format!("{}-{}-{}", self.release, self.environment, self.step);
        let mut prefix: String = readable.chars().take(63 - suffix.len() - 1).collect();
        while prefix.ends_with(['-', '.']) {
            prefix.pop();
        }
        format!("{prefix}-{suffix}").replace('.', "-")
    }

    /// The Job to create from a step's template.
    pub fn request(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        template: &Map<String, Value>,
        timeout: Duration,
        env: &[(&str, &str)],
    ) -> JobRequest {
        let labels: BTreeMap<String, String> = [
            (labels::PIPELINE, self.pipeline),
            (labels::ENVIRONMENT, self.environment),
            (labels::RELEASE, self.release),
            (labels::PURPOSE, self.purpose.as_str()),
            (labels::STEP, self.step),
            (labels::MANAGED_BY, "greenlight"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), truncate_label(v)))
        .collect();
        let mut spec = Value::Object(template.clone());
        decorate(&mut spec, &labels, timeout, env);
        JobRequest {
            cluster: cluster.map(str::to_owned),
            namespace: namespace.to_owned(),
            name: self.name(),
            labels,
            spec,
            timeout,
        }
    }
}

fn truncate_label(value: &str) -> String {
    let mut v: String = value.chars().take(63).collect();
    while v.ends_with(['-', '.', '_']) {
        v.pop();
    }
    v
}

/// Adds labels to the pod template, a deadline, a TTL, and the release's facts as
/// environment variables of every container.
fn decorate(
    spec: &mut Value,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
    env: &[(&str, &str)],
) {
    let Some(object) = spec.as_object_mut() else {
        return;
    };
    object
        .entry("activeDeadlineSeconds")
        .or_insert(json!(timeout.as_secs().max(1)));
    object
        .entry("ttlSecondsAfterFinished")
        .or_insert(json!(86_400));
    object.entry("backoffLimit").or_insert(json!(0));
    let template = object.entry("template").or_insert(json!({}));
    let Some(template) = template.as_object_mut() else {
        return;
    };
    let metadata = template.entry("metadata").or_insert(json!({}));
    if let Some(metadata) = metadata.as_object_mut() {
        let pod_labels = metadata.entry("labels").or_insert(json!({}));
        if let Some(pod_labels) = pod_labels.as_object_mut() {
            for (k, v) in labels {
                pod_labels.insert(k.clone(), json!(v));
            }
        }
    }
    let containers = template
        .get_mut("spec")
        .and_then(|s| s.get_mut("containers"))
        .and_then(Value::as_array_mut);
    for container in containers.into_iter().flatten() {
        let Some(container) = container.as_object_mut() else {
            continue;
        };
        let vars = container.entry("env").or_insert(json!([]));
        if let Some(vars) = vars.as_array_mut() {
            for (name, value) in env {
                if !vars
                    .iter()
                    .any(|v| v.get("name").and_then(Value::as_str) == Some(name))
                {
                    vars.push(json!({"name": name, "value": value}));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(release: &'a str, step: &'a str, attempt: u32) -> JobKey<'a> {
        JobKey {
            pipeline: "shop",
            environment: "prod",
            release,
            purpose: JobPurpose::Gate,
            step,
            attempt,
        }
    }

    #[test]
    fn job_names_are_stable_short_and_distinct() {
        let name = key("shop-1-4-2", "nightly-load", 0).name();
        assert_eq!(name, key("shop-1-4-2", "nightly-load", 0).name());
        assert!(name.starts_with("shop-1-4-2-prod-nightly-load-"), "{name}");
        assert_ne!(
            name,
            key("shop-1-4-2", "nightly-load", 1).name(),
            "a retry gets a new Job"
        );
        assert_ne!(name, key("shop-1-4-3", "nightly-load", 0).name());
        let long = key(&"r".repeat(200), "step", 0).name();
        assert!(long.len() <= 63, "{long}");
        assert!(crate::validation::names::dns_label(&long).is_ok(), "{long}");
        assert!(crate::validation::names::dns_label(&key("shop.1.4.2", "x", 0).name()).is_ok());
    }

    #[test]
    fn requests_carry_labels_deadline_and_release_facts() {
        let template = json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "x"}]}}});
        let request = key("shop-1-4-2", "smoke", 0).request(
            None,
            "shop-staging",
            template.as_object().unwrap(),
            Duration::from_secs(600),
            &[("GREENLIGHT_VERSION", "1.4.2")],
        );
        assert_eq!(request.spec["activeDeadlineSeconds"], 600);
        assert_eq!(
            request.spec["template"]["metadata"]["labels"]["greenlight.dev/purpose"],
            "gate"
        );
        assert_eq!(
            request.spec["template"]["spec"]["containers"][0]["env"][0],
            json!({"name": "GREENLIGHT_VERSION", "value": "1.4.2"})
        );
        assert_eq!(request.labels["greenlight.dev/release"], "shop-1-4-2");
    }
}
