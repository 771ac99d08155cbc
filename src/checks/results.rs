//! Probe results kept between runs: the latest observation of each probe, with its count
//! of failures in a row (what `failureThreshold` is compared with).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::probe::Outcome;
use crate::engine::{Observation, ProbeId};

/// The latest observation of every probe still wanted.
#[derive(Debug, Default, Clone)]
pub struct Results {
    latest: BTreeMap<ProbeId, Observation>,
}

impl Results {
    /// Records a run of `probe` at `at` and returns the observation the engine will see.
    /// Returns whether the observation changed in a way a decision can depend on (pass or
    /// fail, or the failure count), so the caller knows whether to reconcile.
    pub fn record(
        &mut self,
        probe: &ProbeId,
        outcome: Outcome,
        at: Timestamp,
    ) -> (Observation, bool) {
        let previous = self.latest.get(probe);
        let consecutive_failures = if outcome.ok {
            0
        } else {
            previous.map_or(0, |p| p.consecutive_failures) + 1
        };
        let changed = previous
            .is_none_or(|p| p.ok != outcome.ok || p.consecutive_failures != consecutive_failures);
        let observation = Observation {
            probe: probe.clone(),
            at,
            ok: outcome.ok,
            consecutive_failures,
            value: outcome.value,
            message: outcome.message,
        };
        self.latest.insert(probe.clone(), observation.clone());
        (observation, changed)
    }

    /// Forgets probes no longer asked for, so a later request starts from a clean count.
    pub fn retain(&mut self, wanted: &BTreeSet<ProbeId>) {
        self.latest.retain(|id, _| wanted.contains(id));
    }

    /// Every latest observation, for the next snapshot.
    pub fn observations(&self) -> Vec<Observation> {
        self.latest.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ProbeKind, ProbePurpose};

    fn id() -> ProbeId {
        ProbeId {
            environment: "prod".into(),
            purpose: ProbePurpose::Verify,
            kind: ProbeKind::Http,
            name: "http[0]".into(),
            release: None,
        }
    }

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            ok,
            value: None,
            message: if ok {
                "HTTP 200".into()
            } else {
                "HTTP 503, expected 200".into()
            },
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    #[test]
    fn failures_in_a_row_are_counted_and_a_pass_resets_them() {
        let mut results = Results::default();
        let counts: Vec<u32> = [false, false, false, true, false]
            .iter()
            .enumerate()
            .map(|(i, ok)| {
                results
                    .record(&id(), outcome(*ok), at(i as i64))
                    .0
                    .consecutive_failures
            })
            .collect();
        assert_eq!(counts, [1, 2, 3, 0, 1]);
    }

    #[test]
    fn only_changes_a_decision_can_depend_on_ask_for_a_reconcile() {
        let mut results = Results::default();
        assert!(
            results.record(&id(), outcome(true), at(0)).1,
            "the first result"
        );
        assert!(
            !results.record(&id(), outcome(true), at(15)).1,
            "still passing"
        );
        assert!(
            results.record(&id(), outcome(false), at(30)).1,
            "first failure"
        );
        assert!(
            results.record(&id(), outcome(false), at(45)).1,
            "the count reached 2"
        );
    }

    #[test]
    fn a_probe_no_longer_wanted_starts_over() {
        let mut results = Results::default();
        results.record(&id(), outcome(false), at(0));
        results.retain(&BTreeSet::new());
        assert!(results.observations().is_empty());
        assert_eq!(
            results
                .record(&id(), outcome(false), at(1))
                .0
                .consecutive_failures,
            1
        );
    }
}
