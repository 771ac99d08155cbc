//! Time gates: schedule windows and freezes, computed from `now` alone.
//!
//! Cron matches are found in the window's own time zone with `jiff::Zoned`, so a window
//! "02:00 Europe/Berlin" opens at 02:00 local time on both sides of a DST change (and on
//! the day 02:00 does not exist, croner moves it to the first valid instant).

use std::time::Duration;

use jiff::{Timestamp, Zoned};

use super::gate::Gate;
use crate::validation::{CronSchedule, Freeze, Window};

/// Whether a promotion may start at `now`, and if not, when it next may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeGate {
    /// Open until the given instant (`None`: no end in sight).
    Open {
        /// When the current window closes or a freeze begins, if known.
        until: Option<Timestamp>,
    },
    /// Closed; the reason and the earliest instant it opens.
    Closed {
        /// [`Gate::Schedule`] or [`Gate::Freeze`].
        gate: Gate,
        /// Why, in words.
        reason: String,
        /// When it opens, if it ever does within the search horizon.
        opens_at: Option<Timestamp>,
    },
}

/// The latest instant at or before `at` that matches `schedule`.
fn previous_match(schedule: &CronSchedule, at: Timestamp) -> Option<Timestamp> {
    let zoned = at.to_zoned(schedule.time_zone.clone());
    schedule
        .cron
        .find_previous_occurrence(&zoned, true)
        .ok()
        .map(|z: Zoned| z.timestamp())
}

/// The first instant strictly after `at` that matches `schedule`.
fn next_match(schedule: &CronSchedule, at: Timestamp) -> Option<Timestamp> {
    let zoned = at.to_zoned(schedule.time_zone.clone());
    schedule
        .cron
        .find_next_occurrence(&zoned, false)
        .ok()
        .map(|z: Zoned| z.timestamp())
}

fn add(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// If `now` is inside one of the windows, when the last of them closes.
fn open_window_until(windows: &[Window], now: Timestamp) -> Option<Timestamp> {
    windows
        .iter()
        .filter_map(|w| previous_match(&w.opens, now).map(|start| add(start, w.duration)))
        .filter(|&end| now < end)
        .max()
}

/// If `now` is inside a freeze, when it (and any freeze it runs into) ends, and why.
fn active_freeze(freezes: &[Freeze], now: Timestamp) -> Option<(Timestamp, String)> {
    let mut found: Option<(Timestamp, String)> = None;
    for freeze in freezes {
        let (end, reason) = match freeze {
            Freeze::Recurring {
                begins,
                duration,
                reason,
            } => {
                let Some(start) = previous_match(begins, now) else {
                    continue;
                };
                let describe = || {
                    format!(
                        "recurring freeze from {:?} in {} for {}",
                        begins.expression,
                        begins.time_zone_name,
                        crate::validation::format_duration(*duration)
                    )
                };
                (
                    add(start, *duration),
                    reason.clone().unwrap_or_else(describe),
                )
            }
            Freeze::Fixed { start, end, reason } => {
                if now < *start {
                    continue;
                }
                (
                    *end,
                    reason
                        .clone()
                        .unwrap_or_else(|| format!("freeze from {start} to {end}")),
                )
            }
        };
        if now < end && found.as_ref().is_none_or(|(e, _)| end > *e) {
            found = Some((end, reason));
        }
    }
    found
}

/// The next instant after `now` at which a freeze begins.
fn next_freeze_start(freezes: &[Freeze], now: Timestamp) -> Option<Timestamp> {
    freezes
        .iter()
        .filter_map(|freeze| match freeze {
            Freeze::Recurring { begins, .. } => next_match(begins, now),
            Freeze::Fixed { start, .. } => (*start > now).then_some(*start),
        })
        .min()
}

/// How many times the search may jump over a window gap or a freeze before giving up.
const SEARCH_STEPS: usize = 64;

/// Evaluates the schedule and freeze gates at `now`. `ignore_schedule` is the
/// "promote now" override: it skips windows but never freezes.
pub fn time_gate(
    windows: &[Window],
    freezes: &[Freeze],
    ignore_schedule: bool,
    now: Timestamp,
) -> TimeGate {
    let windows: &[Window] = if ignore_schedule { &[] } else { windows };
    let frozen = active_freeze(freezes, now);
    let window_end = open_window_until(windows, now);
    let in_window = windows.is_empty() || window_end.is_some();
    if frozen.is_none() && in_window {
        let until = [window_end, next_freeze_start(freezes, now)]
            .into_iter()
            .flatten()
            .min();
        return TimeGate::Open { until };
    }
    let opens_at = next_opening(windows, freezes, now);
    match frozen {
        Some((end, reason)) => TimeGate::Closed {
            gate: Gate::Freeze,
            reason: format!("frozen until {end}: {reason}"),
            opens_at,
        },
        None => {
            let described: Vec<String> = windows
                .iter()
                .map(|w| {
                    format!(
                        "{:?} {} for {}",
                        w.opens.expression,
                        w.opens.time_zone_name,
                        crate::validation::format_duration(w.duration)
                    )
                })
                .collect();
            TimeGate::Closed {
                gate: Gate::Schedule,
                reason: format!("outside the promotion windows ({})", described.join("; ")),
                opens_at,
            }
        }
    }
}

/// The earliest instant after `now` inside a window (or any time, without windows) and
/// outside every freeze.
fn next_opening(windows: &[Window], freezes: &[Freeze], now: Timestamp) -> Option<Timestamp> {
    let mut at = now;
    for _ in 0..SEARCH_STEPS {
        if let Some((end, _)) = active_freeze(freezes, at) {
            at = end;
            continue;
        }
        if windows.is_empty() || open_window_until(windows, at).is_some() {
            return Some(at);
        }
        at = windows
            .iter()
            .filter_map(|w| next_match(&w.opens, at))
            .min()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{parse_cron, parse_time_zone};

    fn schedule(cron: &str, zone: &str) -> CronSchedule {
        CronSchedule {
            expression: cron.into(),
            cron: parse_cron(cron).unwrap(),
            time_zone: parse_time_zone(zone).unwrap(),
            time_zone_name: zone.into(),
        }
    }

    fn window(cron: &str, zone: &str, hours: u64) -> Window {
        Window {
            opens: schedule(cron, zone),
            duration: Duration::from_secs(hours * 3600),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_nightly_window_is_open_from_two_to_three_utc() {
        let windows = [window("0 2 * * *", "UTC", 1)];
        assert_eq!(
            time_gate(&windows, &[], false, at("2026-11-22T02:00:00Z")),
            TimeGate::Open {
                until: Some(at("2026-11-22T03:00:00Z"))
            }
        );
        assert_eq!(
            time_gate(&windows, &[], false, at("2026-11-22T02:59:59Z")),
            TimeGate::Open {
                until: Some(at("2026-11-22T03:00:00Z"))
            }
        );
        let TimeGate::Closed { gate, opens_at, .. } =
            time_gate(&windows, &[], false, at("2026-11-22T03:00:00Z"))
        else {
            panic!("closed at 3")
        };
        assert_eq!(
            (gate, opens_at),
            (Gate::Schedule, Some(at("2026-11-23T02:00:00Z")))
        );
        let TimeGate::Closed { opens_at, .. } =
            time_gate(&windows, &[], false, at("2026-11-22T01:59:59Z"))
        else {
            panic!("closed before 2")
        };
        assert_eq!(
            opens_at,
            Some(at("2026-11-22T02:00:00Z")),
            "opens on time to the second"
        );
    }

    #[test]
    fn promote_now_ignores_the_schedule_but_not_a_freeze() {
        let windows = [window("0 2 * * *", "UTC", 1)];
        let freezes = [Freeze::Fixed {
            start: at("2026-12-20T00:00:00Z"),
            end: at("2027-01-04T00:00:00Z"),
            reason: Some("holidays".into()),
        }];
        assert!(matches!(
            time_gate(&windows, &freezes, true, at("2026-11-22T12:00:00Z")),
            TimeGate::Open { .. }
        ));
        let TimeGate::Closed {
            gate,
            opens_at,
            reason,
        } = time_gate(&windows, &freezes, true, at("2026-12-24T12:00:00Z"))
        else {
            panic!("frozen")
        };
        assert_eq!(gate, Gate::Freeze);
        assert_eq!(opens_at, Some(at("2027-01-04T00:00:00Z")));
        assert!(reason.contains("holidays"), "{reason}");
    }

    #[test]
    fn a_weekend_freeze_in_berlin_follows_local_time() {
        // Friday 17:00 Berlin for 63h: until Monday 08:00 Berlin.
        let freezes = [Freeze::Recurring {
            begins: Box::new(schedule("0 17 * * 5", "Europe/Berlin")),
            duration: Duration::from_secs(63 * 3600),
            reason: None,
        }];
        // 2026-11-20 is a Friday; Berlin is UTC+1 in November.
        assert!(
            matches!(time_gate(&[], &freezes, false, at("2026-11-20T15:59:59Z")), TimeGate::Open { until: Some(t) } if t == at("2026-11-20T16:00:00Z"))
        );
        let TimeGate::Closed { gate, opens_at, .. } =
            time_gate(&[], &freezes, false, at("2026-11-21T12:00:00Z"))
        else {
            panic!("frozen on Saturday")
        };
        assert_eq!(
            (gate, opens_at),
            (Gate::Freeze, Some(at("2026-11-23T07:00:00Z")))
        );
    }

    #[test]
    fn windows_keep_local_time_across_a_dst_change() {
        // 09:00 New York is 14:00 UTC before 2026-03-08 and 13:00 UTC after it.
        let windows = [window("0 9 * * *", "America/New_York", 1)];
        let TimeGate::Closed { opens_at, .. } =
            time_gate(&windows, &[], false, at("2026-03-07T16:00:00Z"))
        else {
            panic!()
        };
        assert_eq!(opens_at, Some(at("2026-03-08T13:00:00Z")));
        let TimeGate::Closed { opens_at, .. } =
            time_gate(&windows, &[], false, at("2026-03-06T16:00:00Z"))
        else {
            panic!()
        };
        assert_eq!(opens_at, Some(at("2026-03-07T14:00:00Z")));
    }

    #[test]
    fn a_window_inside_a_freeze_opens_at_the_first_window_after_it() {
        let windows = [window("0 2 * * *", "UTC", 1)];
        let freezes = [Freeze::Fixed {
            start: at("2026-12-20T00:00:00Z"),
            end: at("2027-01-04T00:00:00Z"),
            reason: None,
        }];
        let TimeGate::Closed { gate, opens_at, .. } =
            time_gate(&windows, &freezes, false, at("2026-12-19T12:00:00Z"))
        else {
            panic!()
        };
        assert_eq!(gate, Gate::Schedule);
        assert_eq!(opens_at, Some(at("2027-01-04T02:00:00Z")));
    }

    #[test]
    fn an_open_window_reports_when_a_freeze_cuts_it_short() {
        let windows = [window("0 16 * * 5", "UTC", 2)];
        let freezes = [Freeze::Recurring {
            begins: Box::new(schedule("0 17 * * 5", "UTC")),
            duration: Duration::from_secs(3600),
            reason: None,
        }];
        assert_eq!(
            time_gate(&windows, &freezes, false, at("2026-11-20T16:30:00Z")),
            TimeGate::Open {
                until: Some(at("2026-11-20T17:00:00Z"))
            }
        );
    }
}
