//! GitOps mode: an environment's version kept in a Git repository that Argo CD or Flux
//! applies, changed by one commit per deploy or rollback.
//!
//! - [`image`]: image references split into the parts GitOps files store.
//! - [`yaml_edit`]: byte-preserving edits of YAML text.
//! - [`layout`]: where a repository declares the images (kustomize, Helm values, manifests).
//! - [`repo`]: fetch, history and a compare-and-swap push, through libgit2.
//! - [`message`]: what a commit says, and its trailers.
//! - [`sync`]: whether Argo CD or Flux applied a commit, from their status.

pub mod image;
pub mod layout;
pub mod message;
pub mod repo;
pub mod sync;
pub mod yaml_edit;
