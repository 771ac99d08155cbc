//! One engine decision for a 5-environment pipeline with 200 Releases (target: < 100 µs).
//!
//! Run: `cargo bench --bench decide`. Its instruction count, stable on a noisy machine, is
//! guarded against a recorded baseline by `benches/instructions.sh`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use greenlight::{
    api::{Approval, ApprovalSpec, Decision, Pipeline, Release},
    engine::{Snapshot, decide, decide_with},
    sim::{Options, Simulation},
};
use jiff::{SignedDuration, Timestamp};

const PIPELINE: &str = r#"
apiVersion: greenlight.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, namespace: shop}
spec:
  environments:
  - name: dev
    accepts: ["main", "feature/*"]
    target: {namespace: shop-dev, deployments: [{name: api}, {name: web}]}
    verify: {progressDeadline: 5m, window: 2m, http: [{url: "http://api.shop-dev/healthz"}]}
  - name: qa
    target: {namespace: shop-qa, deployments: [{name: api}, {name: web}]}
    gates: {checks: [test, security]}
    verify: {progressDeadline: 5m, window: 5m, http: [{url: "http://api.shop-qa/healthz"}]}
  - name: staging
    accepts: ["release/*"]
    target: {namespace: shop-staging, deployments: [{name: api}, {name: web}]}
    gates: {checks: [test, security, build], soak: 30m}
    verify: {progressDeadline: 10m, window: 10m, http: [{url: "http://api.shop-staging/healthz"}]}
  - name: canary
    target: {namespace: shop-canary, deployments: [{name: api}, {name: web}]}
    gates:
      soak: 1h
      approvals: [{name: release-managers, count: 1, groups: [rm]}]
    verify: {progressDeadline: 10m, window: 15m, http: [{url: "http://api.shop-canary/healthz"}]}
  - name: prod
    accepts: ["hotfix/*"]
    target: {namespace: shop-prod, deployments: [{name: api}, {name: web}]}
    gates:
      checks: [test, security, build]
      soak: 2h
      approvals: [{name: release-managers, count: 2, groups: [rm]}]
      schedule: [{cron: "0 2 * * *", timeZone: Europe/Berlin, duration: 2h}]
      freeze:
      - {cron: "0 17 * * 5", timeZone: Europe/Berlin, duration: 63h}
      - {start: "2026-12-20T00:00:00Z", end: "2027-01-04T00:00:00Z"}
    verify: {progressDeadline: 10m, window: 30m, http: [{url: "https://shop.example.com/healthz"}]}
"#;

/// A pipeline that has been running for a while: 200 releases, the environments at
/// different ones, approvals, every environment with candidates waiting.
fn snapshot() -> Snapshot {
    let start: Timestamp = "2026-11-02T08:00:00Z".parse().unwrap();
    let pipeline: Pipeline = serde_yaml::from_str(PIPELINE).unwrap();
    let mut sim = Simulation::new(pipeline, start, Options::default());
    for i in 0..200 {
        let git_ref = match i % 10 {
            0 => "release/r".to_owned(),
            9 => "hotfix/h".to_owned(),
            _ => "main".to_owned(),
        };
        let yaml = format!(
            "apiVersion: greenlight.dev/v1alpha1\nkind: Release\nmetadata: {{name: shop-{i}, namespace: shop}}\nspec: {{pipeline: shop, version: \"1.{i}.0\", artifacts: {{api: \"registry.example.com/shop/api:1.{i}.0\", web: \"registry.example.com/shop/web:1.{i}.0\"}}, source: {{ref: \"{git_ref}\", author: dev{i}}}, checks: [{{name: test, state: Passed}}, {{name: security, state: Passed}}, {{name: build, state: {}}}]}}\n",
            if i % 3 == 0 { "Passed" } else { "Running" }
        );
        let release: Release = serde_yaml::from_str(&yaml).unwrap();
        sim.add_release(release, start + SignedDuration::from_mins(i * 45));
        if i % 4 == 0 {
            for (env, who) in [("canary", "bob"), ("prod", "bob"), ("prod", "carol")] {
                let spec = ApprovalSpec {
                    release: format!("shop-{i}"),
                    environment: env.into(),
                    decision: Decision::Approve,
                    approver: who.into(),
                    groups: vec!["rm".into()],
                    comment: None,
                };
                sim.add_approval(
                    Approval::new(&format!("a-{i}-{env}-{who}"), spec),
                    start + SignedDuration::from_mins(i * 45 + 30),
                );
            }
        }
    }
    sim.run_until(
        start + SignedDuration::from_mins(200 * 45 + 60),
        &mut |_| {},
    );
    sim.snapshot()
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    assert_eq!(snap.releases.len(), 200);
    let decision = decide(&snap);
    assert_eq!(decision.pipeline_status.environments.len(), 5);
    // The controller checks the spec once per Pipeline generation and reuses it.
    let (valid, _) = greenlight::validation::validate_pipeline(&snap.pipeline.spec);
    let valid = valid.expect("the bench pipeline is valid");
    c.bench_function("decide: 5 environments, 200 releases", |b| {
        b.iter(|| decide_with(black_box(&snap), &valid))
    });
    c.bench_function("decide, checking the spec first", |b| {
        b.iter(|| decide(black_box(&snap)))
    });
    c.bench_function("check the spec alone", |b| {
        b.iter(|| greenlight::validation::validate_pipeline(black_box(&snap.pipeline.spec)))
    });
}

criterion_group!(benches, bench);

/// The decisions whose instructions `benches/instructions.sh` counts (the simulation that
/// builds the snapshot decides too, so the count is taken on this function, kept out of
/// line for that).
#[inline(never)]
fn measured_decisions(
    count: usize,
    snap: &Snapshot,
    valid: &greenlight::validation::ValidPipeline,
) {
    for _ in 0..count {
        black_box(decide_with(black_box(snap), valid));
    }
}

/// `GREENLIGHT_DECIDE_ONLY=N` makes N decisions and nothing else (no criterion), for
/// `benches/instructions.sh`, which counts their instructions under callgrind.
fn main() {
    if let Some(count) = std::env::var("GREENLIGHT_DECIDE_ONLY")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let snap = snapshot();
        let (valid, _) = greenlight::validation::validate_pipeline(&snap.pipeline.spec);
        let valid = valid.expect("the bench pipeline is valid");
        measured_decisions(count, &snap, &valid);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
