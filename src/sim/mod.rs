//! The in-memory cluster and virtual clock behind `greenlight simulate` and the
//! simulation tests: the real engine against simulated Deployments, Jobs, probes and
//! GitOps repositories.

mod git;
mod run;
mod scenario;
pub mod timeline;
mod world;

pub use git::{Applier, SimRepo};
pub use run::{Chaos, Entry, Options, Simulation, Step, baseline_image};
pub use scenario::{Loaded, Request, load, parse_approval};
pub use world::{Failure, FailureMode, Timing, World};
