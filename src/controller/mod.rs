//! The controller side: everything that talks to (or reads from) the API server. The
//! engine decides; this layer observes and acts.

pub mod actions;
pub mod cached_release;
pub mod canary;
pub mod clusters;
pub mod discovery;
pub mod leader;
pub mod logging;
pub mod observe;
pub mod probes;
pub mod rbac;
pub mod reconcile;
pub mod repos;
pub mod routes;
pub mod run;
pub mod selector;
pub mod sent;
pub mod server;
pub mod slim;
pub mod sync_objects;
pub mod unseen;
pub mod workloads;
pub mod world;
