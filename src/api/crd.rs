//! The CustomResourceDefinitions, generated from the types above.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{Approval, Pipeline, Release};

/// Every CRD Greenlight serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Pipeline::crd(), Release::crd(), Approval::crd()]
}

/// The CRDs as one multi-document YAML stream, as `greenlight crds` prints it.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}
