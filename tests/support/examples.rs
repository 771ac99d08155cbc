//! The examples, loaded into the simulator as `greenlight simulate` loads them, and what
//! their timelines say.

#![allow(dead_code)]

use greenlight::sim::{Failure, Loaded, Options, Request, Simulation, load};
use jiff::Timestamp;

/// When every simulation starts.
pub const START: &str = "2026-11-21T09:00:00Z";

/// `examples/<name>`, with these failures injected and these approvals given (in the
/// forms `simulate --fail` and `--approve` take).
pub fn example(name: &str, failures: &[&str], approvals: &[&str]) -> Loaded {
    let failures: Vec<Failure> = failures.iter().map(|f| f.parse().unwrap()).collect();
    let request = Request {
        files: vec![format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")).into()],
        pipeline: None,
        start: START.parse().unwrap(),
        failures: failures.clone(),
        approvals: approvals
            .iter()
            .map(|a| greenlight::sim::parse_approval(a).unwrap())
            .collect(),
    };
    load(
        &request,
        Options {
            failures,
            ..Default::default()
        },
    )
    .unwrap()
}

/// When the timeline says `version` became healthy in `environment`.
pub fn healthy_at(sim: &Simulation, version: &str, environment: &str) -> Option<Timestamp> {
    sim.timeline
        .iter()
        .find(|e| {
            e.kind == "PromotionSucceeded"
                && e.version.as_deref() == Some(version)
                && e.environment.as_deref() == Some(environment)
        })
        .map(|e| e.at)
}
