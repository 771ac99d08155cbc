//! The open-loop schedule: request `i` is due at `start + i / rps`, whatever the server
//! does, and the cap on requests in flight at once.

use std::time::Duration;

use super::LoadtestError;

/// The highest rate one generator process is asked to sustain; beyond it, run several Jobs.
pub const MAX_RPS: f64 = 100_000.0;
/// The most requests one run may plan: each keeps a 4-byte latency sample until the end
/// (exact percentiles), so this bounds the report's memory to about 200 MB.
pub const MAX_REQUESTS: u64 = 50_000_000;
/// The longest per-request timeout: latencies are kept in whole microseconds in 32 bits.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A validated schedule: how many requests, when each is due, and how many may be
/// outstanding at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rps: f64,
    count: u64,
    max_in_flight: u32,
}

impl Schedule {
    /// Plans `rps` requests per second for `duration`, each allowed `timeout`. The cap on
    /// requests in flight defaults to `rps × timeout` (at least 1): with every request
    /// bounded by its timeout, an on-time run never needs more, so the cap only bites when
    /// the generator itself falls behind or when `max_in_flight` sets it lower.
    pub fn new(
        rps: f64,
        duration: Duration,
        timeout: Duration,
        max_in_flight: Option<u32>,
    ) -> Result<Self, LoadtestError> {
        let invalid = |message: String| Err(LoadtestError::Invalid(message));
        if !(rps.is_finite() && rps > 0.0 && rps <= MAX_RPS) {
            return invalid(format!(
                "--rps {rps} is out of range: it must be above 0 and at most {MAX_RPS}"
            ));
        }
        if duration.is_zero() {
            return invalid("--duration must be longer than 0".into());
        }
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return invalid(format!(
                "--timeout {} is out of range: it must be above 0 and at most 1h",
                crate::validation::format_duration(timeout)
            ));
        }
        if max_in_flight == Some(0) {
            return invalid("--max-in-flight must be at least 1".into());
        }
        // A hair of slack so that 0.3 rps × 10s plans 3 requests, not 2.999… → 2.
        let planned = (rps * duration.as_secs_f64() + 1e-9).floor();
        if planned < 1.0 {
            return invalid(format!(
                "--rps {rps} for --duration {} plans no request at all",
                crate::validation::format_duration(duration)
            ));
        }
        if planned > MAX_REQUESTS as f64 {
            return invalid(format!(
                "--rps {rps} for --duration {} plans {planned} requests, more than the \
                 {MAX_REQUESTS} one run can keep samples for; split it into several runs",
                crate::validation::format_duration(duration)
            ));
        }
        let default_cap = (rps * timeout.as_secs_f64())
            .ceil()
            .clamp(1.0, u32::MAX as f64);
        Ok(Self {
            rps,
            count: planned as u64,
            max_in_flight: max_in_flight.unwrap_or(default_cap as u32),
        })
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.rps
    }

    /// How many requests the whole run sends.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// How many requests may be outstanding at once.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// When request `index` is due, counted from the start of the run.
    pub fn offset(&self, index: u64) -> Duration {
        Duration::from_secs_f64(index as f64 / self.rps)
    }

    /// How much of the schedule `due` requests cover: the time a run interrupted after
    /// them has actually loaded the server for.
    pub fn covered(&self, due: u64) -> Duration {
        Duration::from_secs_f64(due as f64 / self.rps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn requests_are_spaced_evenly_from_the_start() {
        let schedule = Schedule::new(100.0, S(60), S(10), None).unwrap();
        assert_eq!(schedule.count(), 6000);
        assert_eq!(schedule.offset(0), Duration::ZERO);
        assert_eq!(schedule.offset(1), Duration::from_millis(10));
        assert_eq!(schedule.offset(5999), Duration::from_millis(59_990));
        assert_eq!(schedule.covered(6000), S(60));
    }

    #[test]
    fn the_in_flight_cap_is_rate_times_timeout_unless_set() {
        assert_eq!(
            Schedule::new(1000.0, S(120), S(10), None)
                .unwrap()
                .max_in_flight(),
            10_000
        );
        assert_eq!(
            Schedule::new(0.5, S(10), Duration::from_millis(100), None)
                .unwrap()
                .max_in_flight(),
            1
        );
        assert_eq!(
            Schedule::new(100.0, S(1), S(10), Some(5))
                .unwrap()
                .max_in_flight(),
            5
        );
    }

    #[test]
    fn fractional_rates_plan_whole_requests() {
        assert_eq!(Schedule::new(0.3, S(10), S(1), None).unwrap().count(), 3);
        assert_eq!(
            Schedule::new(7.0, Duration::from_millis(1500), S(1), None)
                .unwrap()
                .count(),
            10
        );
    }

    #[test]
    fn impossible_plans_say_which_flag_is_wrong() {
        let message = |r: Result<Schedule, LoadtestError>| r.unwrap_err().to_string();
        assert!(message(Schedule::new(0.0, S(1), S(1), None)).contains("--rps 0"));
        assert!(message(Schedule::new(f64::NAN, S(1), S(1), None)).contains("--rps"));
        assert!(message(Schedule::new(1e9, S(1), S(1), None)).contains("at most"));
        assert!(message(Schedule::new(1.0, Duration::ZERO, S(1), None)).contains("--duration"));
        assert!(message(Schedule::new(1.0, S(1), Duration::ZERO, None)).contains("--timeout"));
        assert!(message(Schedule::new(1.0, S(1), S(7200), None)).contains("at most 1h"));
        assert!(message(Schedule::new(1.0, S(1), S(1), Some(0))).contains("--max-in-flight"));
        assert!(message(Schedule::new(0.5, S(1), S(1), None)).contains("plans no request at all"));
        assert!(message(Schedule::new(100_000.0, S(3600), S(1), None)).contains("split it into"));
    }
}
