//! The Prometheus metrics, fed by real decisions from the simulator: SPEC names, bounded
//! labels, and counts that match what happened.

use greenlight::{
    metrics::{Metrics, PipelineLabels},
    sim::{Options, Request, load},
    validation::validate_pipeline,
};

/// The example Pipeline `sanctum/sanctum`.
const SANCTUM: PipelineLabels<'static> = PipelineLabels {
    namespace: "sanctum",
    pipeline: "sanctum",
};

fn run_nightly(failures: &[&str], hours: u64) -> (Metrics, String) {
    run_example("nightly-smoke-promotion", SANCTUM, failures, hours)
}

/// Simulates `examples/<example>` (Pipeline `labels`) for `hours`, feeding every decision
/// to the metrics as the controller does; returns them and their exposition at the end.
fn run_example(
    example: &str,
    labels: PipelineLabels<'_>,
    failures: &[&str],
    hours: u64,
) -> (Metrics, String) {
    let failures: Vec<greenlight::sim::Failure> =
        failures.iter().map(|f| f.parse().unwrap()).collect();
    let request = Request {
        files: vec![format!("{}/examples/{example}", env!("CARGO_MANIFEST_DIR")).into()],
        pipeline: None,
        start: "2026-11-21T09:00:00Z".parse().unwrap(),
        failures: failures.clone(),
        approvals: vec![],
    };
    let mut sim = load(
        &request,
        Options {
            failures,
            ..Default::default()
        },
    )
    .unwrap()
    .simulation;
    let metrics = Metrics::new();
    let spec = validate_pipeline(&sim.snapshot().pipeline.spec)
        .0
        .expect("the example is valid");
    sim.run_for(std::time::Duration::from_secs(hours * 3600), &mut |step| {
        let mut timer = metrics.reconcile("Pipeline");
        metrics.know_pipeline(labels, &spec);
        if step.status_written {
            metrics.record_events(labels, step.decision);
            metrics.record_status(labels, &step.decision.pipeline_status, step.decision);
            timer.ok();
        } else {
            timer.failed("StatusWriteFailed");
        }
    });
    let text = metrics.render_at(sim.now);
    (metrics, text)
}

fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The example Pipeline `kitchen/kitchen` (seed 004, with canary steps in production).
const KITCHEN: PipelineLabels<'static> = PipelineLabels {
    namespace: "kitchen",
    pipeline: "kitchen",
};

#[test]
fn canary_steps_are_counted_by_how_they_ended_with_their_durations() {
    let (_, text) = run_example("github-flow-manual-approval", KITCHEN, &[], 48);
    let series = |name: &str, result: Option<&str>| {
        let result = result
            .map(|r| format!(",result=\"{r}\""))
            .unwrap_or_default();
        sample(
            &text,
            &format!(
                r#"{name}{{environment="production",namespace="kitchen",pipeline="kitchen"{result}}}"#
            ),
        )
    };
    assert_eq!(
        series("greenlight_canary_steps_total", Some("passed")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series("greenlight_canary_steps_total", Some("aborted")),
        Some(0.0)
    );
    assert_eq!(
        series("greenlight_canary_step_duration_seconds_count", None),
        Some(2.0)
    );
    let seconds = series("greenlight_canary_step_duration_seconds_sum", None).unwrap();
    assert!(
        seconds >= 1200.0,
        "two steps of 10m each, from when asked: {seconds}"
    );

    let (_, text) = run_example(
        "github-flow-manual-approval",
        KITCHEN,
        &["0.9.1@production:health"],
        48,
    );
    let aborted = sample(
        &text,
        r#"greenlight_canary_steps_total{environment="production",namespace="kitchen",pipeline="kitchen",result="aborted"}"#,
    );
    assert_eq!(aborted, Some(1.0), "{text}");
}

/// `greenlight_canary_weight` follows production's canary steps: read from the exposition
/// each time production's status says another share.
#[test]
fn the_canary_weight_gauge_follows_the_steps_and_returns_to_zero() {
    let request = Request {
        files: vec![
            format!(
                "{}/examples/github-flow-manual-approval",
                env!("CARGO_MANIFEST_DIR")
            )
            .into(),
        ],
        pipeline: None,
        start: "2026-11-21T09:00:00Z".parse().unwrap(),
        failures: vec![],
        approvals: vec![],
    };
    let mut sim = load(&request, Options::default()).unwrap().simulation;
    let metrics = Metrics::new();
    let mut last: Option<u32> = None;
    let mut exported = Vec::new();
    sim.run_for(std::time::Duration::from_secs(48 * 3600), &mut |step| {
        if !step.status_written {
            return;
        }
        metrics.record_status(KITCHEN, &step.decision.pipeline_status, step.decision);
        let share = step
            .decision
            .pipeline_status
            .environments
            .iter()
            .find(|e| e.name == "production")
            .and_then(|e| e.promotion.as_ref())
            .and_then(|p| p.canary_weight)
            .unwrap_or(0);
        if last != Some(share) {
            last = Some(share);
            let text = metrics.render_at(step.snapshot.now);
            exported.push(sample(
                &text,
                r#"greenlight_canary_weight{environment="production",namespace="kitchen",pipeline="kitchen"}"#,
            ));
        }
    });
    assert_eq!(
        exported,
        [Some(0.0), Some(10.0), Some(50.0), Some(0.0)],
        "0 before, each step's share, 0 after"
    );
}

#[test]
fn a_rollback_is_counted_once_with_its_trigger() {
    let (_, text) = run_nightly(&["2026.11.21-0945@main:health"], 24);
    assert_eq!(
        sample(
            &text,
            r#"greenlight_promotions_total{environment="main",namespace="sanctum",pipeline="sanctum",result="rolled_back"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"greenlight_rollbacks_total{environment="main",namespace="sanctum",pipeline="sanctum",trigger="verification"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"greenlight_time_to_restore_seconds_count{environment="main",namespace="sanctum",pipeline="sanctum"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"greenlight_environment_healthy{environment="main",namespace="sanctum",pipeline="sanctum"}"#
        ),
        Some(1.0),
        "healthy again after the rollback"
    );
}

#[test]
fn a_successful_promotion_records_duration_lead_time_and_what_runs() {
    let (_, text) = run_nightly(&[], 24);
    assert_eq!(
        sample(
            &text,
            r#"greenlight_promotions_total{environment="main",namespace="sanctum",pipeline="sanctum",result="succeeded"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"greenlight_promotion_duration_seconds_count{environment="main",namespace="sanctum",pipeline="sanctum"}"#
        ),
        Some(1.0)
    );
    let lead = sample(
        &text,
        r#"greenlight_lead_time_seconds_sum{environment="main",namespace="sanctum",pipeline="sanctum"}"#,
    )
    .unwrap();
    assert!(
        (17.0 * 3600.0..18.0 * 3600.0).contains(&lead),
        "about 17h from build to main: {lead}"
    );
    let info: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("greenlight_environment_info{") && l.contains(r#"environment="main""#)
        })
        .collect();
    assert_eq!(info.len(), 1, "one series per environment: {info:?}");
    assert!(info[0].contains(r#"version="2026.11.21-0945""#), "{info:?}");
    assert_eq!(
        sample(
            &text,
            r#"greenlight_promotions_total{environment="staging",namespace="sanctum",pipeline="sanctum",result="superseded"}"#
        ),
        Some(0.0),
        "the older staging build was never waiting for staging"
    );
    assert_eq!(
        sample(
            &text,
            r#"greenlight_gate_evaluations_total{gate="schedule",result="pass"}"#
        ),
        Some(1.0),
        "main's promotion passed the schedule gate once"
    );
}

#[test]
fn a_blocked_promotion_reports_its_age_by_gate() {
    let (_, text) = run_nightly(&["2026.11.21-0945@main:test"], 30);
    let blocked = sample(&text, r#"greenlight_promotion_blocked_seconds{environment="main",gate="tests",namespace="sanctum",pipeline="sanctum"}"#).unwrap();
    assert!(
        blocked > 29.0 * 3600.0,
        "blocked since the first morning: {blocked}"
    );
}

#[test]
fn every_spec_metric_is_exported_with_bounded_labels() {
    let (_, text) = run_nightly(&["2026.11.21-0945@main:health"], 24);
    for name in [
        "greenlight_reconcile_total",
        "greenlight_reconcile_duration_seconds",
        "greenlight_environment_info",
        "greenlight_environment_healthy",
        "greenlight_environment_degraded",
        "greenlight_promotions_total",
        "greenlight_rollbacks_total",
        "greenlight_promotion_duration_seconds",
        "greenlight_lead_time_seconds",
        "greenlight_time_to_restore_seconds",
        "greenlight_promotion_blocked_seconds",
        "greenlight_gate_evaluations_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("greenlight_environment_info"))
    {
        assert!(
            !line.contains("2026.11.") && !line.contains("sanctum-2026"),
            "a release or version in a label: {line}"
        );
    }
    assert!(
        sample(
            &text,
            r#"greenlight_reconcile_total{kind="Pipeline",result="ok"}"#
        )
        .unwrap()
            > 10.0
    );
}

#[test]
fn a_deleted_pipeline_leaves_no_series_behind() {
    let (metrics, text) = run_nightly(&["2026.11.21-0945@main:health"], 24);
    assert_eq!(
        sample(
            &text,
            r#"greenlight_environment_degraded{environment="main",namespace="sanctum",pipeline="sanctum"}"#
        ),
        Some(0.0),
        "main rolled back to a healthy release: not Degraded"
    );
    assert!(text.contains(r#"pipeline="sanctum""#));
    metrics.forget_pipeline(SANCTUM);
    let after = metrics.render();
    let left: Vec<&str> = after
        .lines()
        .filter(|l| l.contains(r#"pipeline="sanctum""#))
        .collect();
    assert!(left.is_empty(), "series of the deleted Pipeline: {left:?}");
    assert!(
        sample(
            &after,
            r#"greenlight_reconcile_total{kind="Pipeline",result="ok"}"#
        )
        .is_some(),
        "series without a pipeline label stay"
    );
}
