//! The `greenlight.dev/v1alpha1` API: the wire types the API server stores.
//!
//! These types are deliberately lenient (durations, cron expressions and time zones are
//! plain strings) so that one bad field never makes a whole object unreadable to the
//! controller. [`crate::validation`] turns them into checked models and names every problem.

mod approval;
mod common;
mod crd;
mod gitops;
mod pipeline;
mod pipeline_status;
mod release;
mod workload;

pub use approval::*;
pub use common::*;
pub use crd::*;
pub use gitops::*;
pub use pipeline::*;
pub use pipeline_status::*;
pub use release::*;
pub use workload::*;

/// The API group of every Greenlight kind.
pub const GROUP: &str = "greenlight.dev";
/// The served and stored API version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "greenlight.dev/v1alpha1";
