//! The controller side: everything that talks to (or reads from) the API server. The
//! engine decides; this layer observes and acts.
//!
//! So far: turning API objects into the engine's views. The watch loop, actions, status
//! writes, probes and leader election are issue 4's remaining work.

pub mod actions;
pub mod observe;
