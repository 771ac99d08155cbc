//! Renders a simulation for people (a timeline and, per release, where it got and when)
//! or as JSON for tools.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde_json::json;

use super::run::{Entry, Simulation};

/// `Sat 2026-11-21 09:00:00 UTC`.
pub fn clock(at: Timestamp) -> String {
    at.strftime("%a %Y-%m-%d %H:%M:%S UTC").to_string()
}

fn span(from: Timestamp, to: Timestamp) -> String {
    crate::validation::format_duration(
        std::time::Duration::try_from(to.duration_since(from)).unwrap_or_default(),
    )
}

/// Entries worth showing: Pipeline and Release copies of the same Event appear once.
fn entries(sim: &Simulation) -> Vec<&Entry> {
    let mut shown: Vec<&Entry> = Vec::new();
    for entry in &sim.timeline {
        let duplicate = shown.iter().rev().take(8).any(|e| {
            e.at == entry.at && e.environment == entry.environment && e.message == entry.message
        });
        if !duplicate {
            shown.push(entry);
        }
    }
    shown
}

/// Where each release got: per environment, when it became healthy there.
struct Reached {
    name: String,
    version: String,
    created: Timestamp,
    healthy_in: Vec<(String, Timestamp)>,
    final_states: Vec<(String, String, Option<String>)>,
}

fn reached(sim: &Simulation) -> Vec<Reached> {
    let mut releases = sim.visible_releases();
    releases.sort_by_key(|r| r.created);
    releases
        .into_iter()
        .map(|r| {
            let healthy_in = sim
                .timeline
                .iter()
                .filter(|e| {
                    e.kind == "PromotionSucceeded" && e.version.as_deref() == Some(&r.spec.version)
                })
                .filter_map(|e| e.environment.clone().map(|env| (env, e.at)))
                .collect();
            let final_states = sim
                .release_status(&r.name)
                .map(|s| {
                    s.environments
                        .iter()
                        .map(|e| (e.name.clone(), format!("{:?}", e.state), e.message.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Reached {
                name: r.name.clone(),
                version: r.spec.version.clone(),
                created: r.created,
                healthy_in,
                final_states,
            }
        })
        .collect()
}

/// The human timeline.
pub fn text(sim: &Simulation, title: &str, start: Timestamp, last_environment: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "from {} to {}\n", clock(start), clock(sim.now));
    for entry in entries(sim) {
        let env = entry.environment.as_deref().unwrap_or("-");
        let _ = writeln!(out, "{}  {env:<12} {}", clock(entry.at), entry.message);
    }
    let _ = writeln!(out, "\nWhere each release got:");
    for r in reached(sim) {
        let line = match r.healthy_in.iter().find(|(env, _)| env == last_environment) {
            Some((_, at)) => format!(
                "reached {last_environment} at {} ({} after it was created)",
                clock(*at),
                span(r.created, *at)
            ),
            None => {
                let furthest = r
                    .healthy_in
                    .last()
                    .map(|(env, at)| format!("got as far as {env} ({})", clock(*at)))
                    .unwrap_or_else(|| "reached no environment".into());
                let stuck = r
                    .final_states
                    .iter()
                    .filter(|(_, state, _)| state != "Healthy")
                    .map(|(env, state, message)| {
                        format!(
                            "{state} in {env}{}",
                            message
                                .as_ref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>();
                if stuck.is_empty() {
                    format!("{furthest}; not in {last_environment} by the end")
                } else {
                    format!("{furthest}; {}", stuck.join("; "))
                }
            }
        };
        let _ = writeln!(out, "  {} ({}): {line}", r.version, r.name);
    }
    out
}

/// The same, as JSON.
pub fn json(sim: &Simulation, start: Timestamp) -> serde_json::Value {
    json!({
        "start": start.to_string(),
        "end": sim.now.to_string(),
        "timeline": entries(sim).iter().map(|e| json!({
            "at": e.at.to_string(),
            "environment": e.environment,
            "version": e.version,
            "kind": e.kind,
            "message": e.message,
        })).collect::<Vec<_>>(),
        "releases": reached(sim).iter().map(|r| json!({
            "name": r.name,
            "version": r.version,
            "created": r.created.to_string(),
            "healthy": r.healthy_in.iter().map(|(env, at)| json!({"environment": env, "at": at.to_string()})).collect::<Vec<_>>(),
            "environments": r.final_states.iter().map(|(env, state, message)| json!({"environment": env, "state": state, "message": message})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pipeline": sim.status(),
    })
}
