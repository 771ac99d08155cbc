//! What each request came to, tallied: counts by outcome, status codes, and exact latency
//! percentiles over every sample.
//!
//! Percentiles are exact (sorted samples, nearest rank) rather than from an HDR histogram:
//! a run is bounded to [`MAX_REQUESTS`](super::schedule::MAX_REQUESTS) samples of 4 bytes,
//! so exactness costs little memory, needs no extra crate, and a gate decision right at a
//! threshold is never off by a histogram bucket.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

/// Why a request counts as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The server answered 400–499.
    Http4xx,
    /// The server answered 500 or above.
    Http5xx,
    /// No complete answer by the request's deadline (its scheduled time plus `--timeout`).
    Timeout,
    /// The connection could not be opened (refused, DNS, TLS handshake).
    Connect,
    /// The connection broke during the exchange (reset, malformed answer).
    Transport,
    /// Never sent: the cap on requests in flight was reached at its scheduled time.
    Capacity,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Transport,
        ErrorKind::Capacity,
    ];

    /// The short name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Http4xx => "4xx",
            ErrorKind::Http5xx => "5xx",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Transport => "transport",
            ErrorKind::Capacity => "capacity",
        }
    }
}

/// How one scheduled request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A complete answer (any status), `latency` after its scheduled time.
    Answered { status: u16, latency: Duration },
    /// No complete answer by its deadline; `after` is the timeout.
    TimedOut { after: Duration },
    /// Failed without an answer; `detail` says how, for the report.
    Failed { kind: ErrorKind, detail: String },
}

/// What the requests of a run came to, without the latency samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Requests that were due (sent, or refused by the in-flight cap).
    pub due: u64,
    /// Requests actually started.
    pub sent: u64,
    /// Requests answered with a complete response, whatever its status.
    pub completed: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// The first failure message of each kind that has one, to say what went wrong.
    pub first_failure: BTreeMap<ErrorKind, String>,
}

impl Counts {
    /// How many errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// How many errors of one kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors.get(&kind).copied().unwrap_or(0)
    }

    /// Errors over requests due; 0 when nothing was due.
    pub fn error_rate(&self) -> f64 {
        if self.due == 0 {
            0.0
        } else {
            self.error_count() as f64 / self.due as f64
        }
    }

    fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// The running tally of a load test: counts and every latency sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// The counts so far.
    pub counts: Counts,
    /// Latency samples in microseconds: answers, and timeouts at the timeout.
    samples: Vec<u32>,
}

impl Tally {
    /// Adds one outcome. Status 400 and above is an error; 1xx–3xx are successes (a
    /// redirect is the server's deliberate answer, not a failure).
    pub fn record(&mut self, outcome: Outcome) {
        let counts = &mut self.counts;
        match outcome {
            Outcome::Answered { status, latency } => {
                counts.completed += 1;
                *counts.statuses.entry(status).or_default() += 1;
                match status {
                    400..=499 => counts.error(ErrorKind::Http4xx),
                    500.. => counts.error(ErrorKind::Http5xx),
                    _ => {}
                }
                self.samples.push(micros(latency));
            }
            Outcome::TimedOut { after } => {
                counts.error(ErrorKind::Timeout);
                self.samples.push(micros(after));
            }
            Outcome::Failed { kind, detail } => {
                counts.error(kind);
                counts.first_failure.entry(kind).or_insert(detail);
            }
        }
    }

    /// Sorts the samples once and reads the percentiles off them.
    pub fn finish(mut self) -> (Counts, LatencySummary) {
        self.samples.sort_unstable();
        let at = |percent| nearest_rank(&self.samples, percent).map(from_micros);
        let latency = LatencySummary {
            samples: self.samples.len() as u64,
            p50: at(50),
            p95: at(95),
            p99: at(99),
            max: self.samples.last().copied().map(from_micros),
        };
        (self.counts, latency)
    }
}

fn micros(latency: Duration) -> u32 {
    u32::try_from(latency.as_micros()).unwrap_or(u32::MAX)
}

fn from_micros(micros: u32) -> Duration {
    Duration::from_micros(u64::from(micros))
}

/// Latency percentiles; `None` when there was no sample (nothing answered or timed out).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// How many latencies the percentiles are taken over.
    pub samples: u64,
    /// Median.
    pub p50: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
    /// Slowest.
    pub max: Option<Duration>,
}

impl LatencySummary {
    /// The given percentile (50, 95 or 99).
    pub fn percentile(&self, percent: u8) -> Option<Duration> {
        match percent {
            50 => self.p50,
            95 => self.p95,
            99 => self.p99,
            _ => None,
        }
    }
}

/// The nearest-rank percentile of sorted samples: the smallest sample such that at least
/// `percent`% of all samples are at or below it. `None` for no samples; percent is
/// clamped to 1..=100.
pub fn nearest_rank<T: Copy>(sorted: &[T], percent: u8) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let percent = u64::from(percent.clamp(1, 100));
    let n = sorted.len() as u64;
    let rank = (percent * n).div_ceil(100);
    sorted.get((rank.max(1) - 1) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_takes_the_smallest_sample_covering_the_percentage() {
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 50), Some(50));
        assert_eq!(nearest_rank(&hundred, 95), Some(95));
        assert_eq!(nearest_rank(&hundred, 99), Some(99));
        assert_eq!(nearest_rank(&hundred, 100), Some(100));
        let ten: Vec<u32> = (1..=10).collect();
        // 95% of 10 samples is 9.5: the 10th sample is the first to cover it.
        assert_eq!(nearest_rank(&ten, 95), Some(10));
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&[7u32], 1), Some(7));
        assert_eq!(nearest_rank::<u32>(&[], 50), None);
        // 1001 samples: rank ceil(990.99) = 991.
        let many: Vec<u32> = (1..=1001).collect();
        assert_eq!(nearest_rank(&many, 99), Some(991));
    }

    #[test]
    fn the_tally_counts_status_classes_and_failures_as_errors() {
        let mut tally = Tally::default();
        tally.counts.due = 6;
        tally.counts.sent = 5;
        let ms = Duration::from_millis;
        for (status, latency) in [(200, 1), (302, 2), (404, 3), (503, 4)] {
            tally.record(Outcome::Answered {
                status,
                latency: ms(latency),
            });
        }
        tally.record(Outcome::TimedOut { after: ms(100) });
        tally.record(Outcome::Failed {
            kind: ErrorKind::Capacity,
            detail: "cap".into(),
        });
        let (counts, latency) = tally.finish();
        assert_eq!(counts.completed, 4);
        assert_eq!(counts.statuses[&302], 1);
        assert_eq!(counts.error_count(), 4);
        assert_eq!(counts.errors_of(ErrorKind::Http4xx), 1);
        assert_eq!(counts.errors_of(ErrorKind::Http5xx), 1);
        assert_eq!(counts.errors_of(ErrorKind::Timeout), 1);
        assert_eq!(counts.errors_of(ErrorKind::Capacity), 1);
        assert_eq!(counts.errors_of(ErrorKind::Connect), 0);
        assert!((counts.error_rate() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(counts.first_failure[&ErrorKind::Capacity], "cap");
        // The timeout is a sample (at the timeout); the refused request is not.
        assert_eq!(latency.samples, 5);
        assert_eq!(latency.p50, Some(ms(3)));
        assert_eq!(latency.max, Some(ms(100)));
        assert_eq!(latency.percentile(99), Some(ms(100)));
    }

    #[test]
    fn an_empty_tally_has_no_rate_and_no_percentiles() {
        let (counts, latency) = Tally::default().finish();
        assert_eq!(counts.error_rate(), 0.0);
        assert_eq!(latency, LatencySummary::default());
    }
}
