//! GitOps mode: an environment's version kept in a Git repository that Argo CD or Flux
//! applies, changed by one commit per deploy or rollback.
//!
//! - [`image`]: image references split into the parts GitOps files store.
//! - [`yaml_edit`]: byte-preserving edits of YAML text.
//! - [`layout`]: where a repository declares the images (kustomize, Helm values, manifests).

pub mod image;
pub mod layout;
pub mod yaml_edit;
