//! Types and schema helpers shared by the three kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Status conditions, following the Kubernetes API conventions.
pub type Conditions = Vec<Condition>;

/// Upper bounds on lists and strings, used by the schema and by validation. They keep
/// every CEL rule inside the API server's cost budget and objects far below etcd's limits.
pub mod limits {
    /// Environments per Pipeline.
    pub const ENVIRONMENTS: usize = 16;
    /// Upstream environments per environment.
    pub const UPSTREAMS: usize = 8;
    /// Entries in small lists: deployments, globs, steps, probes, rules, windows.
    pub const ITEMS: usize = 16;
    /// Entries in longer lists: required checks, groups, users, artifacts.
    pub const MANY_ITEMS: usize = 32;
    /// A DNS-1123 label: environment, namespace, artifact, container and step names.
    pub const NAME: usize = 63;
    /// A DNS-1123 subdomain: Kubernetes object names.
    pub const OBJECT_NAME: usize = 253;
    /// Short free-form strings: refs, versions, durations, cron expressions, user names.
    pub const SHORT: usize = 256;
    /// URLs and image references.
    pub const LONG: usize = 2048;
    /// PromQL queries and comments.
    pub const TEXT: usize = 4096;
}

/// A DNS-1123 label, as Kubernetes requires for namespaces, containers and our names.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A duration in Go / Kubernetes notation (`90s`, `15m`, `1h30m`), checked by the API
/// server; [`crate::validation::parse_duration`] accepts exactly these.
pub const DURATION: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$";
/// A DNS-1123 subdomain, as Kubernetes requires for most object names.
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key of a Secret's `data`, as the API server accepts it.
pub const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";

/// A Job run by Greenlight: a pre-deploy migration, a verification test or a gate test.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStep {
    /// Name of the step, unique within its list. Used in the Job's name and in status.
    #[schemars(length(min = 1, max = limits::NAME), pattern(DNS_LABEL))]
    pub name: String,
    /// A `batch/v1` JobSpec. Greenlight adds its labels and owner reference, and runs it in
    /// the environment's target namespace. Checked by `greenlight check`, stored as given.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: Map<String, Value>,
    /// How long the Job may run before the step counts as failed, as a duration such as
    /// `10m` or `1h30m`. Default: `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::SHORT), pattern(DURATION))]
    pub timeout: Option<String>,
}

/// Schema for an object whose fields the API server keeps as they are.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
