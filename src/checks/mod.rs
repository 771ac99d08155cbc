//! Probes that produce the engine's observations: HTTP checks, Prometheus instant queries
//! against thresholds, and webhooks. Each call has its own timeout, so a slow or dead
//! endpoint delays nothing but itself.

mod client;
mod probe;
mod results;

pub use client::{Answer, HttpClient};
pub use probe::{Outcome, evaluate_prometheus, run_probe};
pub use results::Results;
