//! The SLO thresholds a run is judged against, and each one's pass or fail.

use std::time::Duration;

use super::stats::LatencySummary;

/// The error rate allowed when `--max-error-rate` is not given: seed 003's "<2%", so that
/// a run against a dead server never passes just because no threshold was named.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.02;

/// Upper limits; a figure equal to its limit passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Errors over requests due, 0 to 1.
    pub max_error_rate: f64,
    /// Median latency.
    pub max_p50: Option<Duration>,
    /// 95th percentile latency.
    pub max_p95: Option<Duration>,
    /// 99th percentile latency.
    pub max_p99: Option<Duration>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            max_p50: None,
            max_p95: None,
            max_p99: None,
        }
    }
}

/// One threshold against what was measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Check {
    /// The error rate against `--max-error-rate`.
    ErrorRate { limit: f64, measured: f64 },
    /// A latency percentile against `--max-pNN`; `measured` is `None` when there was no
    /// sample, which fails: a limit cannot be shown to hold without a measurement.
    Latency {
        percentile: u8,
        limit: Duration,
        measured: Option<Duration>,
    },
}

impl Check {
    /// Whether the measured figure is within its limit.
    pub fn passed(&self) -> bool {
        match *self {
            Check::ErrorRate { limit, measured } => measured <= limit,
            Check::Latency {
                limit, measured, ..
            } => measured.is_some_and(|m| m <= limit),
        }
    }

    /// The threshold's name: `error rate`, `p95`.
    pub fn name(&self) -> String {
        match self {
            Check::ErrorRate { .. } => "error rate".to_owned(),
            Check::Latency { percentile, .. } => format!("p{percentile}"),
        }
    }
}

impl Thresholds {
    /// Judges the measured figures, error rate first, then p50, p95, p99 as set.
    pub fn evaluate(&self, error_rate: f64, latency: &LatencySummary) -> Vec<Check> {
        let mut checks = vec![Check::ErrorRate {
            limit: self.max_error_rate,
            measured: error_rate,
        }];
        for (percentile, limit) in [(50, self.max_p50), (95, self.max_p95), (99, self.max_p99)] {
            if let Some(limit) = limit {
                checks.push(Check::Latency {
                    percentile,
                    limit,
                    measured: latency.percentile(percentile),
                });
            }
        }
        checks
    }

    /// Refuses limits that cannot mean anything: an error rate outside 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(format!(
                "--max-error-rate {} is out of range: it is a fraction from 0 to 1 (0.02 \
                 means 2%)",
                self.max_error_rate
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(p50: u64, p95: u64, p99: u64) -> LatencySummary {
        let ms = |m| Some(Duration::from_millis(m));
        LatencySummary {
            samples: 100,
            p50: ms(p50),
            p95: ms(p95),
            p99: ms(p99),
            max: ms(p99),
        }
    }

    #[test]
    fn figures_at_their_limit_pass_and_above_it_fail() {
        let thresholds = Thresholds {
            max_error_rate: 0.02,
            max_p50: None,
            max_p95: Some(Duration::from_millis(1500)),
            max_p99: Some(Duration::from_secs(3)),
        };
        let checks = thresholds.evaluate(0.02, &latency(10, 1500, 3001));
        let verdicts: Vec<(String, bool)> = checks.iter().map(|c| (c.name(), c.passed())).collect();
        assert_eq!(
            verdicts,
            [
                ("error rate".to_owned(), true),
                ("p95".to_owned(), true),
                ("p99".to_owned(), false)
            ]
        );
        assert!(!thresholds.evaluate(0.0201, &latency(1, 1, 1))[0].passed());
    }

    #[test]
    fn a_latency_limit_without_any_sample_fails() {
        let thresholds = Thresholds {
            max_p50: Some(Duration::from_secs(1)),
            ..Thresholds::default()
        };
        let checks = thresholds.evaluate(1.0, &LatencySummary::default());
        assert!(checks.iter().all(|c| !c.passed()), "{checks:?}");
    }

    #[test]
    fn an_error_rate_limit_outside_zero_to_one_is_refused() {
        let mut thresholds = Thresholds::default();
        assert_eq!(thresholds.validate(), Ok(()));
        thresholds.max_error_rate = 2.0;
        assert!(thresholds.validate().unwrap_err().contains("0.02 means 2%"));
        thresholds.max_error_rate = f64::NAN;
        assert!(thresholds.validate().is_err());
    }
}
