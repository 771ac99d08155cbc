//! The controller's reaction time and footprint, against the fake API server on loopback
//! (`tests/support/fake_api.rs`).
//!
//! - Reaction: from an Approval appearing in the watch stream to the Deployment patch,
//!   over many promotions (p50/p95/p99/max); and from a schedule window opening to the
//!   patch (one sample, it waits for the next whole minute; skip with `--no-window`).
//! - Footprint: `greenlight controller` as a child process (release build) with 1,000
//!   Pipelines, 20,000 Releases and 5,000 Deployments in its caches: RSS once synced and
//!   after every Pipeline was reconciled, and CPU while idle.
//!
//! Run: `cargo bench --bench controller` (add `-- --no-window` to skip the minute-long
//! window sample, `-- --quick` for fewer objects).

#[path = "../tests/support/fake_api.rs"]
mod fake_api;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use fake_api::{FakeApi, Recorded};
use greenlight::controller::run::{Options, run};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
/// How long the footprint run may take to reconcile everything before it is reported as
/// not settled.
const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// Requests counted by method and collection (`PATCH releases/status: 20000`).
fn requests_by_kind(requests: &[Recorded]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in requests {
        let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        let rest = match segments.iter().position(|s| *s == "namespaces") {
            Some(i) => &segments[(i + 2).min(segments.len())..],
            None => &segments[segments.len().min(if segments[0] == "api" { 2 } else { 3 })..],
        };
        let kind = match rest {
            [resource] | [resource, _] => (*resource).to_owned(),
            [resource, _, sub, ..] => format!("{resource}/{sub}"),
            [] => r.path.clone(),
        };
        let watch = if r.query.contains("watch=true") {
            " (watch)"
        } else {
            ""
        };
        *counts
            .entry(format!("{} {kind}{watch}", r.method))
            .or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `metadata.managedFields` as a real API server returns them: one entry per manager, each
/// with its `fieldsV1` set (here a plausible one of about 1.5 KiB).
fn managed_fields(managers: &[(&str, &str, Option<&str>)]) -> Value {
    let fields = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:team": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {"k:{\"name\":\"api\"}": {".": {}, "f:env": {".": {}, "k:{\"name\":\"LOG_LEVEL\"}": {".": {}, "f:name": {}, "f:value": {}}},
        "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:ports": {".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}},
        "f:resources": {".": {}, "f:requests": {".": {}, "f:cpu": {}, "f:memory": {}}}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
        "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}});
    managers
        .iter()
        .map(|(manager, operation, subresource)| {
            let mut entry = json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
                "time": "2026-11-20T09:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields});
            if let Some(sub) = subresource {
                entry["subresource"] = json!(sub);
            }
            entry
        })
        .collect()
}

/// A Deployment as a real API server returns it: managed fields of three managers, the
/// last-applied annotation, three containers (the app, a proxy, a log shipper), defaulted
/// fields and a status with conditions.
fn deployment(namespace: &str, name: &str, image: &str) -> Value {
    let container = |name: &str, image: &str| {
        json!({"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
               "ports": [{"containerPort": 8080, "protocol": "TCP"}],
               "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu-west-1"}],
               "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
               "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}-uid"),
                     "generation": 1, "creationTimestamp": "2026-11-01T09:00:00Z",
                     "labels": {"app": name, "team": "shop", "app.kubernetes.io/part-of": "shop"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(1500),
                                     "deployment.kubernetes.io/revision": "7"},
                     "managedFields": managed_fields(&[("argocd-controller", "Apply", None),
                                                       ("kube-controller-manager", "Update", Some("status")),
                                                       ("greenlight", "Apply", None)])},
        "spec": {"replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                 "selector": {"matchLabels": {"app": name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                    "containers": [container(name, image), container("proxy", "envoyproxy/envoy:v1.30.1"),
                                   container("logs", "fluent/fluent-bit:3.0")],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30}}},
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                   "availableReplicas": 3,
                   "conditions": [
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": "2026-11-20T09:00:00Z", "lastTransitionTime": "2026-11-20T09:00:00Z"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                        "message": format!("ReplicaSet \"{name}-7d4b9c8f6\" has successfully progressed."),
                        "lastUpdateTime": "2026-11-20T09:00:00Z", "lastTransitionTime": "2026-11-20T09:00:00Z"}]}
    })
}

fn environment(name: &str, namespace: &str, upstream: Option<&str>, gates: Value) -> Value {
    let mut env = json!({
        "name": name,
        "target": {"namespace": namespace, "deployments": [{"name": "api", "container": "api"}]},
        "gates": gates,
        "verify": {"progressDeadline": "10m"},
        "rollback": {"automatic": true}
    });
    match upstream {
        Some(up) => env["upstream"] = json!([up]),
        None => env["accepts"] = json!(["main"]),
    }
    env
}

/// A Release as a real API server returns it: CI's managed fields and the last-applied
/// annotation of `kubectl apply`.
fn release(namespace: &str, pipeline: &str, name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}-uid"),
                     "generation": 1, "creationTimestamp": "2026-11-01T09:00:00Z",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(600)},
                     "managedFields": managed_fields(&[("kubectl-client-side-apply", "Update", None)])},
        "spec": {"pipeline": pipeline, "version": version,
                 "artifacts": {"api": format!("registry.example.com/{pipeline}/api:{version}")},
                 "source": {"ref": "main", "commit": "3f2a9c1d", "author": "carol"},
                 "requestedBy": "ci-bot",
                 "checks": [{"name": "test", "state": "Passed"}, {"name": "security", "state": "Passed"}]}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn is_patch(r: &Recorded, namespace: &str, image: &str) -> bool {
    r.method == http::Method::PATCH
        && r.path == format!("/apis/apps/v1/namespaces/{namespace}/deployments/api")
        && r.body.to_string().contains(image)
}

async fn start_controller(api: &FakeApi) -> tokio::sync::watch::Sender<bool> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let client = api.client();
    tokio::spawn(async move {
        let options = Options {
            namespace: None,
            selector: None,
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            leader_election: None,
            instance: "bench".into(),
            concurrency: greenlight::controller::run::DEFAULT_CONCURRENCY,
            git: Default::default(),
            rediscover: greenlight::controller::discovery::REDISCOVER,
        };
        run(client, options, shutdown)
            .await
            .expect("the controller runs");
    });
    stop
}

async fn approval_reaction(samples: usize) {
    let api = FakeApi::start(true).await;
    api.put(deployment(
        "shop-dev",
        "api",
        "registry.example.com/shop/api:0.0.0",
    ));
    api.put(deployment(
        "shop-prod",
        "api",
        "registry.example.com/shop/api:0.0.0",
    ));
    api.put(json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"environments": [
            environment("dev", "shop-dev", None, json!({})),
            environment("prod", "shop-prod", Some("dev"), json!({"approvals": [{"name": "owners", "count": 1}]}))
        ]}
    }));
    // Enough other Releases in the stores that each snapshot has something to filter.
    for i in 0..200 {
        api.put(release(
            "other",
            "other",
            &format!("other-{i}"),
            &format!("0.{i}.0"),
        ));
    }
    let stop = start_controller(&api).await;
    let mut latencies = Vec::new();
    for i in 1..=samples {
        // Zero-padded: Releases created in the same second are ordered by name.
        let (name, version) = (format!("shop-{i:04}"), format!("1.{i}.0"));
        api.put(release("shop", "shop", &name, &version));
        let waiting = api
            .wait_for(WAIT, || {
                let r = api.get("greenlight.dev/v1alpha1", "Release", "shop", &name)?;
                let waits = r["status"]["environments"]
                    .as_array()?
                    .iter()
                    .any(|e| e["name"] == "prod" && e["state"] == "Waiting");
                waits.then_some(())
            })
            .await;
        assert!(
            waiting.is_some(),
            "release {name} never waited for prod's approval"
        );
        let image = format!("api:{version}");
        let created = Instant::now();
        api.put(json!({
            "apiVersion": "greenlight.dev/v1alpha1", "kind": "Approval",
            "metadata": {"name": format!("approve-{i}"), "namespace": "shop"},
            "spec": {"release": name, "environment": "prod", "decision": "Approve", "approver": "alice"}
        }));
        let patch = api
            .wait_for_request(WAIT, |r| is_patch(r, "shop-prod", &image))
            .await
            .expect("the approval leads to the prod patch");
        latencies.push(patch.at.saturating_duration_since(created));
        api.clear_requests();
    }
    latencies.sort();
    println!(
        "reaction, Approval in the watch stream -> prod Deployment patch ({samples} promotions): \
         p50 {:.1?}  p95 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    let _ = stop.send(true);
}

async fn window_reaction() {
    let api = FakeApi::start(true).await;
    api.put(deployment(
        "win-dev",
        "api",
        "registry.example.com/win/api:0.0.0",
    ));
    api.put(deployment(
        "win-prod",
        "api",
        "registry.example.com/win/api:0.0.0",
    ));
    // The window opens at the next whole minute at least 5 s away.
    let now = jiff::Timestamp::now();
    let opens = jiff::Timestamp::from_second((now.as_second() + 5 + 59) / 60 * 60).unwrap();
    let at = opens.to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!("{} {} * * *", at.minute(), at.hour());
    api.put(json!({
        "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
        "metadata": {"name": "win", "namespace": "win"},
        "spec": {"environments": [
            environment("dev", "win-dev", None, json!({})),
            environment("prod", "win-prod", Some("dev"), json!({"schedule": [{"cron": cron, "timeZone": "UTC", "duration": "10m"}]}))
        ]}
    }));
    let stop = start_controller(&api).await;
    api.put(release("win", "win", "win-1", "1.0.0"));
    println!("waiting for the window that opens at {opens} ...");
    let patch = api
        .wait_for_request(Duration::from_secs(90), |r| {
            is_patch(r, "win-prod", "api:1.0.0")
        })
        .await
        .expect("the window opens and the release is deployed");
    let patched_at = jiff::Timestamp::now()
        - jiff::SignedDuration::try_from(patch.at.elapsed()).unwrap_or_default();
    println!(
        "reaction, schedule window opening -> prod Deployment patch: {:.1?} after {opens}",
        patched_at.duration_since(opens)
    );
    let _ = stop.send(true);
}

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

async fn footprint(pipelines: usize, releases_per_pipeline: usize) {
    let api = FakeApi::start(true).await;
    let started = Instant::now();
    for p in 0..pipelines {
        let (ns, name) = (format!("team-{p}"), format!("app-{p}"));
        let envs: Vec<Value> = ["dev", "test", "staging", "canary", "prod"]
            .iter()
            .enumerate()
            .map(|(i, env)| {
                let target = format!("{ns}-{env}");
                api.put(deployment(&target, "api", &format!("registry.example.com/{name}/api:0.0.0")));
                let upstream = (i > 0).then(|| ["dev", "test", "staging", "canary"][i - 1]);
                let gates = if *env == "prod" {
                    json!({"approvals": [{"name": "owners", "count": 2}], "checks": ["test", "security"]})
                } else {
                    json!({"checks": ["test"]})
                };
                environment(env, &target, upstream, gates)
            })
            .collect();
        api.put(json!({
            "apiVersion": "greenlight.dev/v1alpha1", "kind": "Pipeline",
            "metadata": {"name": name, "namespace": ns, "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(2000)}},
            "spec": {"environments": envs}
        }));
        for r in 0..releases_per_pipeline {
            api.put(release(
                &ns,
                &name,
                &format!("{name}-{r}"),
                &format!("1.{r}.0"),
            ));
        }
    }
    println!(
        "footprint: {pipelines} Pipelines, {} Releases, {} Deployments in the fake API ({:.1?})",
        pipelines * releases_per_pipeline,
        pipelines * 5,
        started.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n\
             current-context: fake\n",
            api.url
        ),
    )
    .unwrap();
    // Cold start: every Release status is written once.
    let cold = Controller::launch(&kubeconfig).await;
    let settled = cold.settle(&api).await;
    let before = cpu_ticks(cold.pid);
    let requests_before = api.request_count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_ticks = cpu_ticks(cold.pid) - before;
    let idle_requests = api.request_count() - requests_before;
    println!(
        "footprint: cold start: ready (caches synced) after {:.1?} with RSS {:.1} MiB, \
         {} CPU ticks in the controller and {} in the fake API server; settled after {:.1?} ({} API requests, {} writes) with RSS {:.1} MiB, peak {:.1} MiB",
        cold.ready_after,
        cold.ready_rss as f64 / 1024.0,
        cold.ready_ticks.0,
        cold.ready_ticks.1,
        settled.after,
        settled.requests,
        settled.writes,
        settled.rss as f64 / 1024.0,
        settled.peak as f64 / 1024.0,
    );
    println!(
        "footprint: idle for 10 s: {idle_ticks} CPU ticks (1 tick = 10 ms), {idle_requests} API requests"
    );
    cold.stop();

    // Restart of a settled controller: nothing changed, so nothing is written.
    api.clear_requests();
    let warm = Controller::launch(&kubeconfig).await;
    let settled = warm.settle(&api).await;
    println!(
        "footprint: restart: ready after {:.1?} ({} CPU ticks in the controller, {} in the fake API server), settled after {:.1?}: {} API requests, {} writes ({}); RSS {:.1} MiB, peak {:.1} MiB",
        warm.ready_after,
        warm.ready_ticks.0,
        warm.ready_ticks.1,
        settled.after,
        settled.requests,
        settled.writes,
        requests_by_kind(&api.requests()),
        settled.rss as f64 / 1024.0,
        settled.peak as f64 / 1024.0,
    );

    // One new Release: its cost does not grow with the old ones.
    api.clear_requests();
    let since = Instant::now();
    api.put(release(
        "team-0",
        "app-0",
        "app-0-new",
        &format!("2.{releases_per_pipeline}.0"),
    ));
    let settled = warm.settle(&api).await;
    println!(
        "footprint: one new Release (among {}): {} API requests ({}) until settled, {:.1?}",
        pipelines * releases_per_pipeline,
        settled.requests,
        requests_by_kind(&api.requests()),
        since.elapsed().saturating_sub(Duration::from_secs(3)),
    );
    warm.stop();
}

/// A `greenlight controller` child process against the fake API server.
struct Controller {
    child: std::process::Child,
    pid: u32,
    launched: Instant,
    ready_after: Duration,
    ready_rss: u64,
    /// CPU ticks the controller used until ready, and the bench process (the fake API
    /// server serving its lists) in the same time.
    ready_ticks: (u64, u64),
}

/// What a controller did until no request came for 3 s.
struct Settled {
    after: Duration,
    requests: usize,
    writes: usize,
    rss: u64,
    peak: u64,
}

impl Controller {
    /// Starts the release binary and waits until `/readyz` answers 200.
    async fn launch(kubeconfig: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let launched = Instant::now();
        let bench_ticks = cpu_ticks(std::process::id());
        // GREENLIGHT_BENCH_WRAP="heaptrack" (or "valgrind --tool=massif", ...) runs the
        // child under a profiler; the RSS and CPU figures are then the wrapper's. Profilers
        // that hook malloc need the build without jemalloc: `--no-default-features`.
        let wrap = std::env::var("GREENLIGHT_BENCH_WRAP").unwrap_or_default();
        let mut command: Vec<String> = wrap.split_whitespace().map(str::to_owned).collect();
        command.push(env!("CARGO_BIN_EXE_greenlight").to_owned());
        let child = Command::new(&command[0])
            .args(&command[1..])
            .args(["controller", "--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the greenlight binary starts");
        let pid = child.id();
        let probes = greenlight::checks::HttpClient::new().unwrap();
        let ready_url = format!("http://127.0.0.1:{port}/readyz");
        loop {
            if let Ok(answer) = probes.get(&ready_url, Duration::from_secs(1)).await
                && answer.status == 200
            {
                break;
            }
            assert!(launched.elapsed() < Duration::from_secs(300), "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            pid,
            launched,
            ready_after: launched.elapsed(),
            ready_rss: proc_status(pid, "VmRSS:"),
            ready_ticks: (cpu_ticks(pid), cpu_ticks(std::process::id()) - bench_ticks),
        }
    }

    /// Waits until no request came for 3 s, reporting progress every 10 s (so that a run
    /// that does not settle shows what it keeps doing).
    async fn settle(&self, api: &FakeApi) -> Settled {
        let started = Instant::now();
        let first = api.request_count();
        let mut last = (first, Instant::now());
        let mut report = Instant::now();
        let mut reported = first;
        while last.1.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let count = api.request_count();
            if count != last.0 {
                last = (count, Instant::now());
            }
            if report.elapsed() >= Duration::from_secs(10) {
                report = Instant::now();
                let recent = api.requests();
                let recent = &recent[reported.min(recent.len())..];
                reported += recent.len();
                println!(
                    "footprint: {:.0?} after launch, {count} requests, RSS {:.1} MiB, {} CPU ticks; \
                     the last 10 s: {}",
                    self.launched.elapsed(),
                    proc_status(self.pid, "VmRSS:") as f64 / 1024.0,
                    cpu_ticks(self.pid),
                    requests_by_kind(recent)
                );
            }
            if started.elapsed() > SETTLE_LIMIT {
                println!("footprint: NOT settled after {SETTLE_LIMIT:?}");
                break;
            }
        }
        let requests = api.requests();
        let writes = requests[first.min(requests.len())..]
            .iter()
            .filter(|r| r.method != http::Method::GET)
            .count();
        Settled {
            after: self.launched.elapsed(),
            requests: api.request_count() - first,
            writes,
            rss: proc_status(self.pid, "VmRSS:"),
            peak: proc_status(self.pid, "VmHWM:"),
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks: there is nothing to list here.
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    approval_reaction(if quick { 20 } else { 200 }).await;
    if !args.iter().any(|a| a == "--no-window") && !quick {
        window_reaction().await;
    }
    if quick {
        footprint(50, 20).await;
    } else {
        footprint(1_000, 20).await;
    }
}
