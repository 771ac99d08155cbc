//! The outcome of a run for its three readers: a text report for people (80 columns),
//! JSON for machines, and the one-line summary the controller copies into status.

use std::{fmt::Write as _, time::Duration};

use serde_json::{Value, json};

use super::{
    size::format_size,
    stats::{Counts, ErrorKind, LatencySummary},
    thresholds::Check,
};

/// Everything a finished (or interrupted) run measured, and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// HTTP method sent.
    pub method: String,
    /// Target URL.
    pub url: String,
    /// Planned requests per second.
    pub rps: f64,
    /// Planned duration.
    pub duration: Duration,
    /// How much of the schedule ran: `duration`, or less when interrupted.
    pub covered: Duration,
    /// Request body size in bytes, if any.
    pub payload: Option<u64>,
    /// Per-request timeout, counted from each request's scheduled time.
    pub timeout: Duration,
    /// Cap on requests in flight at once.
    pub max_in_flight: u32,
    /// Stopped by a signal before the schedule ended.
    pub interrupted: bool,
    /// Wall-clock time from the first request to the last answer (or giving up on it).
    pub elapsed: Duration,
    /// Requests started per second over the time it took to start them.
    pub achieved_rps: f64,
    /// Requests and errors.
    pub counts: Counts,
    /// Latency percentiles.
    pub latency: LatencySummary,
    /// Each threshold with its verdict.
    pub checks: Vec<Check>,
}

impl Report {
    /// Every threshold met and the whole schedule run.
    pub fn passed(&self) -> bool {
        !self.interrupted && self.checks.iter().all(Check::passed)
    }

    /// Why the run failed, one phrase per reason (empty when it passed).
    pub fn failures(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.interrupted {
            reasons.push(format!(
                "interrupted after {} of {}",
                go_duration(self.covered),
                go_duration(self.duration)
            ));
        }
        reasons.extend(
            self.checks
                .iter()
                .filter(|check| !check.passed())
                .map(violation),
        );
        reasons
    }
}

/// The one-line summary written to the termination message, verdict first, for example
/// `passed: 6000 requests at 100 rps for 1m0s, errors 0 (0.0000), p50 2ms p95 4ms p99 7ms`
/// or `failed: error rate 0.0510 > 0.02, p99 3.2s > 3s; 6000 requests at …`. The
/// controller copies it verbatim into status.
pub fn summary_line(report: &Report) -> String {
    let latency = |percentile| {
        report
            .latency
            .percentile(percentile)
            .map_or_else(|| "n/a".to_owned(), format_latency)
    };
    let body = format!(
        "{} requests at {} rps for {}, errors {} ({}), p50 {} p95 {} p99 {}",
        report.counts.due,
        report.rps,
        go_duration(report.covered),
        report.counts.error_count(),
        format_rate(report.counts.error_rate()),
        latency(50),
        latency(95),
        latency(99),
    );
    if report.passed() {
        format!("passed: {body}")
    } else {
        format!("failed: {}; {body}", report.failures().join(", "))
    }
}

/// The threshold a check broke, as `error rate 0.0510 > 0.02` or `p99 3.2s > 3s`.
fn violation(check: &Check) -> String {
    match *check {
        Check::ErrorRate { limit, measured } => {
            format!(
                "error rate {} > {limit}",
                format_rate_above(measured, limit)
            )
        }
        Check::Latency {
            percentile,
            limit,
            measured: Some(measured),
        } => format!(
            "p{percentile} {} > {}",
            format_latency(measured),
            format_latency(limit)
        ),
        Check::Latency {
            percentile,
            measured: None,
            ..
        } => format!("p{percentile} unmeasured (no answers)"),
    }
}

/// A ratio with four decimals: `0.0510`.
pub fn format_rate(rate: f64) -> String {
    format!("{rate:.4}")
}

/// A rate known to exceed `limit`, with as many decimals as it takes to show that it does
/// (so `0.02004` against `0.02` reads `0.02004`, not `0.0200 > 0.02`).
fn format_rate_above(rate: f64, limit: f64) -> String {
    (4..=9)
        .map(|decimals| format!("{rate:.decimals$}"))
        .find(|text| text.parse::<f64>().is_ok_and(|shown| shown > limit))
        .unwrap_or_else(|| format!("{rate}"))
}

/// A latency, rounded up so a figure over its limit never prints as equal to or under it:
/// `0.4ms`, `2ms`, `2.5ms` under 10 ms, whole milliseconds up to a second (`130ms`), then
/// seconds (`1.5s`, `3.204s`).
pub fn format_latency(latency: Duration) -> String {
    let micros = latency.as_micros();
    if micros < 10_000 {
        let tenths = micros.div_ceil(100);
        return match tenths % 10 {
            0 => format!("{}ms", tenths / 10),
            fraction => format!("{}.{fraction}ms", tenths / 10),
        };
    }
    let millis = micros.div_ceil(1000);
    if millis < 1000 {
        format!("{millis}ms")
    } else {
        format!("{}s", seconds_text(millis))
    }
}

/// Whole and fractional seconds of `millis`, without trailing zeros: `3`, `3.2`, `3.204`.
fn seconds_text(millis: u128) -> String {
    let (whole, fraction) = (millis / 1000, millis % 1000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// A run length as Go prints durations: `1m0s`, `2m0s`, `1h30m0s`, `1.5s`, `500ms`
/// (to the millisecond).
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let (hours, minutes) = (millis / 3_600_000, millis / 60_000 % 60);
    let seconds = seconds_text(millis % 60_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

const WIDTH: usize = 80;
const LABEL: usize = 12;

/// The report for people, in 80 columns (a very long URL or status list wraps or runs
/// over; nothing else does).
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "{label:<LABEL$}{text}");
    };
    line("target", &format!("{} {}", report.method, report.url));
    let payload = report.payload.map_or_else(
        || "no body".to_owned(),
        |b| format!("{} body", format_size(b)),
    );
    line(
        "plan",
        &format!(
            "{} rps for {}, {payload}, timeout {}",
            report.rps,
            go_duration(report.duration),
            go_duration(report.timeout)
        ),
    );
    line(
        "",
        &format!("at most {} requests in flight", report.max_in_flight),
    );
    let counts = &report.counts;
    line(
        "requests",
        &format!(
            "{} due, {} sent, {} answered in {}",
            counts.due,
            counts.sent,
            counts.completed,
            go_duration(report.elapsed)
        ),
    );
    line(
        "",
        &format!(
            "sent at {:.1} rps (planned {})",
            report.achieved_rps, report.rps
        ),
    );
    let by_kind: Vec<String> = ErrorKind::ALL
        .iter()
        .filter(|kind| counts.errors_of(**kind) > 0)
        .map(|kind| format!("{} {}", kind.label(), counts.errors_of(*kind)))
        .collect();
    let mut errors = format!(
        "{} ({})",
        counts.error_count(),
        format_rate(counts.error_rate())
    );
    if !by_kind.is_empty() {
        errors = format!("{errors}: {}", by_kind.join(", "));
    }
    line("errors", &errors);
    for (kind, detail) in &counts.first_failure {
        line(
            "",
            &clip(&format!("first {} error: {detail}", kind.label())),
        );
    }
    let statuses: Vec<String> = counts
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    for (i, chunk) in wrap(&statuses).iter().enumerate() {
        line(if i == 0 { "statuses" } else { "" }, chunk);
    }
    let latency = &report.latency;
    let figure = |d: Option<Duration>| d.map_or_else(|| "n/a".to_owned(), format_latency);
    line(
        "latency",
        &format!(
            "p50 {}, p95 {}, p99 {}, max {}",
            figure(latency.p50),
            figure(latency.p95),
            figure(latency.p99),
            figure(latency.max)
        ),
    );
    line(
        "",
        &format!(
            "over {} samples, from each request's scheduled time",
            latency.samples
        ),
    );
    line("", "(queueing counts; a timeout counts at the timeout)");
    for (i, check) in report.checks.iter().enumerate() {
        let verdict = if check.passed() { "pass" } else { "FAIL" };
        line(
            if i == 0 { "thresholds" } else { "" },
            &format!("{:<36}{verdict}", threshold_text(check)),
        );
    }
    let failures = report.failures();
    if failures.is_empty() {
        line("result", "passed");
    } else {
        for (i, reason) in failures.iter().enumerate() {
            line(
                if i == 0 { "result" } else { "" },
                &format!("{}{reason}", if i == 0 { "failed: " } else { "        " }),
            );
        }
    }
    line(
        "",
        "errors: HTTP status >= 400, timeouts, connect and transport",
    );
    line(
        "",
        "failures, and requests not sent because the in-flight cap was full",
    );
    out
}

/// `error rate 0.0000 (max 0.02)`, `p95 4ms (max 1.5s)`.
fn threshold_text(check: &Check) -> String {
    match *check {
        Check::ErrorRate { limit, measured } => {
            format!("error rate {} (max {limit})", format_rate(measured))
        }
        Check::Latency {
            percentile,
            limit,
            measured,
        } => format!(
            "p{percentile} {} (max {})",
            measured.map_or_else(|| "n/a".to_owned(), format_latency),
            format_latency(limit)
        ),
    }
}

/// Cuts `text` to what fits after the label column.
fn clip(text: &str) -> String {
    let room = WIDTH - LABEL;
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(room - 1).collect();
    cut.push('…');
    cut
}

/// Joins items with ", " into lines that fit after the label column.
fn wrap(items: &[String]) -> Vec<String> {
    let room = WIDTH - LABEL;
    let mut lines: Vec<String> = Vec::new();
    for item in items {
        match lines.last_mut() {
            Some(last) if last.chars().count() + 2 + item.chars().count() <= room => {
                last.push_str(", ");
                last.push_str(item);
            }
            _ => lines.push(item.clone()),
        }
    }
    lines
}

/// The report for machines. Latencies are milliseconds (microsecond precision), rates
/// are fractions, `null` where nothing was measured.
pub fn to_json(report: &Report) -> Value {
    let ms = |d: Option<Duration>| d.map(|d| d.as_micros() as f64 / 1000.0);
    let counts = &report.counts;
    let errors: serde_json::Map<String, Value> = ErrorKind::ALL
        .iter()
        .map(|kind| {
            (
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                json!(counts.errors_of(*kind)),
            )
        })
        .collect();
    let first_failure: serde_json::Map<String, Value> = counts
        .first_failure
        .iter()
        .filter_map(|(kind, detail)| {
            let key = serde_json::to_value(kind).ok()?.as_str()?.to_owned();
            Some((key, json!(detail)))
        })
        .collect();
    let thresholds: Vec<Value> = report
        .checks
        .iter()
        .map(|check| match *check {
            Check::ErrorRate { limit, measured } => json!({
                "metric": "errorRate", "limit": limit, "measured": measured,
                "passed": check.passed(),
            }),
            Check::Latency {
                percentile,
                limit,
                measured,
            } => json!({
                "metric": format!("p{percentile}"), "limitMs": ms(Some(limit)),
                "measuredMs": ms(measured), "passed": check.passed(),
            }),
        })
        .collect();
    json!({
        "verdict": if report.passed() { "passed" } else { "failed" },
        "summary": summary_line(report),
        "failures": report.failures(),
        "target": {"method": report.method, "url": report.url},
        "plan": {
            "rps": report.rps,
            "durationSeconds": report.duration.as_secs_f64(),
            "payloadBytes": report.payload,
            "timeoutSeconds": report.timeout.as_secs_f64(),
            "maxInFlight": report.max_in_flight,
        },
        "interrupted": report.interrupted,
        "coveredSeconds": report.covered.as_secs_f64(),
        "elapsedSeconds": report.elapsed.as_secs_f64(),
        "requests": counts.due,
        "sent": counts.sent,
        "completed": counts.completed,
        "achievedRps": report.achieved_rps,
        "errorRate": counts.error_rate(),
        "errors": Value::Object({
            let mut errors = errors;
            errors.insert("total".into(), json!(counts.error_count()));
            errors
        }),
        "firstFailure": first_failure,
        "statuses": counts.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "latencyMs": {
            "samples": report.latency.samples,
            "p50": ms(report.latency.p50),
            "p95": ms(report.latency.p95),
            "p99": ms(report.latency.p99),
            "max": ms(report.latency.max),
        },
        "thresholds": thresholds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::thresholds::Thresholds;

    /// Seed 003's soak SLOs: errors <2%, p95 <1.5s, p99 <3s.
    fn soak() -> Thresholds {
        Thresholds {
            max_error_rate: 0.02,
            max_p50: None,
            max_p95: Some(Duration::from_millis(1500)),
            max_p99: Some(Duration::from_secs(3)),
        }
    }

    /// 6000 requests at 100 rps for a minute, `errors` of them 5xx, judged against
    /// seed 003's soak thresholds.
    fn report(errors: u64, p99: Duration) -> Report {
        let ms = Duration::from_millis;
        let mut counts = Counts {
            due: 6000,
            sent: 6000,
            completed: 6000,
            ..Counts::default()
        };
        counts.statuses.insert(200, 6000 - errors);
        if errors > 0 {
            counts.statuses.insert(500, errors);
            counts.errors.insert(ErrorKind::Http5xx, errors);
        }
        let latency = LatencySummary {
            samples: 6000,
            p50: Some(ms(2)),
            p95: Some(ms(4)),
            p99: Some(p99),
            max: Some(p99 + ms(1)),
        };
        Report {
            method: "GET".into(),
            url: "http://auth.sanctum-staging.svc:8080/api/echo".into(),
            rps: 100.0,
            duration: Duration::from_secs(60),
            covered: Duration::from_secs(60),
            payload: None,
            timeout: Duration::from_secs(10),
            max_in_flight: 1000,
            interrupted: false,
            elapsed: Duration::from_secs(60),
            achieved_rps: 100.0,
            checks: soak().evaluate(counts.error_rate(), &latency),
            counts,
            latency,
        }
    }

    #[test]
    fn a_passing_run_summarises_verdict_first() {
        let report = report(0, Duration::from_millis(7));
        assert!(report.passed());
        assert_eq!(
            summary_line(&report),
            "passed: 6000 requests at 100 rps for 1m0s, errors 0 (0.0000), p50 2ms p95 4ms p99 7ms"
        );
    }

    #[test]
    fn a_failing_run_names_each_violated_threshold_before_the_figures() {
        let report = report(306, Duration::from_millis(3200));
        assert!(!report.passed());
        assert_eq!(
            summary_line(&report),
            "failed: error rate 0.0510 > 0.02, p99 3.2s > 3s; 6000 requests at 100 rps for \
             1m0s, errors 306 (0.0510), p50 2ms p95 4ms p99 3.2s"
        );
    }

    #[test]
    fn an_interrupted_run_fails_and_says_how_far_it_got() {
        let mut report = report(0, Duration::from_millis(7));
        report.interrupted = true;
        report.covered = Duration::from_secs(30);
        report.counts.due = 3000;
        let line = summary_line(&report);
        assert!(
            line.starts_with(
                "failed: interrupted after 30s of 1m0s; 3000 requests at 100 rps for 30s,"
            ),
            "{line}"
        );
    }

    #[test]
    fn the_text_report_fits_in_80_columns_and_shows_each_threshold() {
        let mut report = report(306, Duration::from_millis(3200));
        report.counts.errors.insert(ErrorKind::Connect, 3);
        report.counts.first_failure.insert(
            ErrorKind::Connect,
            "client error (Connect): tcp connect error: Connection refused (os error 111) \
             while connecting to the service"
                .into(),
        );
        report.checks = soak().evaluate(report.counts.error_rate(), &report.latency);
        let text = render_text(&report);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "too wide: {line:?}");
        }
        assert!(
            text.contains("errors      309 (0.0515): 5xx 306, connect 3"),
            "{text}"
        );
        assert!(text.contains("p95 4ms (max 1.5s)"), "{text}");
        assert!(text.contains("p99 3.2s (max 3s)"), "{text}");
        assert!(
            text.contains("first connect error: client error (Connect)"),
            "{text}"
        );
        assert!(
            text.contains("result      failed: error rate 0.0515 > 0.02"),
            "{text}"
        );
        assert!(text.contains("statuses    200: 5694, 500: 306"), "{text}");
    }

    #[test]
    fn the_json_report_carries_the_figures_and_the_verdict() {
        let report = report(306, Duration::from_millis(3200));
        let json = to_json(&report);
        assert_eq!(json["verdict"], "failed");
        assert_eq!(json["requests"], 6000);
        assert_eq!(json["errors"]["http5xx"], 306);
        assert_eq!(json["errors"]["total"], 306);
        assert_eq!(json["errorRate"], 0.051);
        assert_eq!(json["latencyMs"]["p99"], 3200.0);
        assert_eq!(json["statuses"]["500"], 306);
        assert_eq!(json["thresholds"][2]["metric"], "p99");
        assert_eq!(json["thresholds"][2]["passed"], false);
        assert_eq!(json["summary"], summary_line(&report));
    }

    #[test]
    fn latencies_round_up_to_a_readable_unit() {
        let us = Duration::from_micros;
        assert_eq!(format_latency(us(350)), "0.4ms");
        assert_eq!(format_latency(us(2000)), "2ms");
        assert_eq!(format_latency(us(2001)), "2.1ms");
        assert_eq!(format_latency(us(9_950)), "10ms");
        assert_eq!(format_latency(us(129_001)), "130ms");
        assert_eq!(format_latency(us(999_999)), "1s");
        assert_eq!(format_latency(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_latency(Duration::from_millis(3200)), "3.2s");
        assert_eq!(format_latency(us(3_000_001)), "3.001s");
        assert_eq!(format_latency(Duration::from_secs(3)), "3s");
        assert_eq!(format_latency(Duration::ZERO), "0ms");
    }

    #[test]
    fn run_lengths_print_as_go_does() {
        let s = Duration::from_secs;
        assert_eq!(go_duration(s(60)), "1m0s");
        assert_eq!(go_duration(s(120)), "2m0s");
        assert_eq!(go_duration(s(900)), "15m0s");
        assert_eq!(go_duration(s(5400)), "1h30m0s");
        assert_eq!(go_duration(s(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(61_250)), "1m1.25s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn a_rate_over_its_limit_never_prints_as_equal() {
        assert_eq!(format_rate_above(0.051, 0.02), "0.0510");
        assert_eq!(format_rate_above(0.02004, 0.02), "0.02004");
    }
}
