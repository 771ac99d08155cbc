//! Runs the probes the engine asks for, each in its own task at its own interval, so a
//! slow or dead endpoint delays nothing but itself. Results are kept per Pipeline and read
//! into the next snapshot; a result that can change a decision asks for a reconcile.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use kube::runtime::reflector::ObjectRef;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    api::Pipeline,
    checks::{HttpClient, Results, run_probe},
    engine::{Observation, ProbeId, ProbeRequest},
};

/// The probes of one Pipeline.
#[derive(Default)]
struct PipelineProbes {
    results: Results,
    running: HashMap<ProbeId, (ProbeRequest, JoinHandle<()>)>,
}

type State = Arc<Mutex<HashMap<ObjectRef<Pipeline>, PipelineProbes>>>;

/// Schedules probes and keeps their results.
#[derive(Clone)]
pub struct Prober {
    client: HttpClient,
    state: State,
    changed: mpsc::UnboundedSender<ObjectRef<Pipeline>>,
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Pipeline>, PipelineProbes>> {
    // A panicking probe task cannot leave the map half-written: every update is one insert.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Prober {
    /// A prober that sends the Pipeline of every decisive result to `changed`.
    pub fn new(client: HttpClient, changed: mpsc::UnboundedSender<ObjectRef<Pipeline>>) -> Self {
        Self {
            client,
            state: State::default(),
            changed,
        }
    }

    /// Makes the running probes of `pipeline` exactly `requests`: new ones start now,
    /// changed ones restart, and ones no longer asked for stop and are forgotten.
    pub fn set(&self, pipeline: &ObjectRef<Pipeline>, requests: &[ProbeRequest]) {
        let mut state = lock(&self.state);
        let probes = state.entry(pipeline.clone()).or_default();
        let wanted: BTreeSet<ProbeId> = requests.iter().map(|r| r.id.clone()).collect();
        probes.running.retain(|id, (_, task)| {
            let keep = wanted.contains(id);
            if !keep {
                task.abort();
            }
            keep
        });
        probes.results.retain(&wanted);
        for request in requests {
            if probes
                .running
                .get(&request.id)
                .is_some_and(|(running, _)| running == request)
            {
                continue;
            }
            let task = tokio::spawn(probe_loop(
                self.client.clone(),
                self.state.clone(),
                self.changed.clone(),
                pipeline.clone(),
                request.clone(),
            ));
            if let Some((_, old)) = probes
                .running
                .insert(request.id.clone(), (request.clone(), task))
            {
                old.abort();
            }
        }
        if probes.running.is_empty() {
            state.remove(pipeline);
        }
    }

    /// The latest result of each probe of `pipeline`.
    pub fn observations(&self, pipeline: &ObjectRef<Pipeline>) -> Vec<Observation> {
        lock(&self.state)
            .get(pipeline)
            .map(|p| p.results.observations())
            .unwrap_or_default()
    }

    /// Stops every probe (this replica stopped leading, or shuts down).
    pub fn stop_all(&self) {
        for (_, probes) in lock(&self.state).drain() {
            for (_, (_, task)) in probes.running {
                task.abort();
            }
        }
    }

    /// How many probes run now.
    pub fn running(&self) -> usize {
        lock(&self.state).values().map(|p| p.running.len()).sum()
    }
}

async fn probe_loop(
    client: HttpClient,
    state: State,
    changed: mpsc::UnboundedSender<ObjectRef<Pipeline>>,
    pipeline: ObjectRef<Pipeline>,
    request: ProbeRequest,
) {
    let mut ticks = tokio::time::interval(request.interval.max(std::time::Duration::from_secs(1)));
    // A probe that overran its interval runs again once, not in a burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = run_probe(&client, &request).await;
        let decisive = {
            let mut state = lock(&state);
            let Some(probes) = state.get_mut(&pipeline) else {
                return;
            };
            let (_, decisive) = probes
                .results
                .record(&request.id, outcome, jiff::Timestamp::now());
            decisive
        };
        if decisive && changed.send(pipeline.clone()).is_err() {
            return;
        }
    }
}
