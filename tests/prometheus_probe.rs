//! The Prometheus probe against a real Prometheus server (Debian's `prometheus` package)
//! scraping a tiny exporter served from the test itself: the query API is not mocked.
//!
//! Without a `prometheus` binary the tests skip, unless `GREENLIGHT_REQUIRE_PROMETHEUS=1`
//! (set by `.ci/run`), in which case they fail.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use greenlight::{
    checks::{HttpClient, Outcome, run_probe},
    engine::{ProbeId, ProbeKind, ProbePurpose, ProbeRequest, ProbeTarget},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// How long Prometheus may take to start and scrape, or to show a new scrape: generous,
/// for a loaded two-core machine; every wait polls and returns as soon as it can.
const PATIENCE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

const ERROR_RATIO: &str = "greenlight_test_error_ratio";
const COMPUTED_RATIO: &str =
    r#"sum(greenlight_test_requests_total{code="500"}) / sum(greenlight_test_requests_total)"#;

/// The exporter's gauge, changeable while Prometheus scrapes it.
#[derive(Clone)]
struct Gauge(Arc<AtomicU64>);

impl Gauge {
    fn new(value: f64) -> Self {
        Self(Arc::new(AtomicU64::new(value.to_bits())))
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::SeqCst);
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::SeqCst))
    }
}

/// A tiny HTTP/1.1 Prometheus exporter: `/metrics` answers the gauge
/// `greenlight_test_error_ratio` and the counter `greenlight_test_requests_total`
/// (95 with `code="200"`, 5 with `code="500"`) in the text exposition format; anything
/// else is 404. Returns its `host:port`.
async fn exporter(ratio: Gauge) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let ratio = ratio.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut read = 0;
                // A scrape is a GET: the head is all there is.
                loop {
                    let n = socket.read(&mut buffer[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") || read == buffer.len() {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = match path.as_str() {
                    "/metrics" => (
                        "200 OK",
                        format!(
                            "# HELP {ERROR_RATIO} Share of failed requests.\n\
                             # TYPE {ERROR_RATIO} gauge\n\
                             {ERROR_RATIO} {}\n\
                             # HELP greenlight_test_requests_total Requests served.\n\
                             # TYPE greenlight_test_requests_total counter\n\
                             greenlight_test_requests_total{{code=\"200\"}} 95\n\
                             greenlight_test_requests_total{{code=\"500\"}} 5\n",
                            ratio.get()
                        ),
                    ),
                    _ => ("404 Not Found", "no\n".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

/// A running Prometheus, killed (and its data directory removed) on drop.
struct Prometheus {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    address: String,
    /// Holds the config, the TSDB and the log; removed after the child is gone.
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        log_tail(self.dir.path())
    }
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `/usr/bin/prometheus`, or `prometheus` on `PATH`.
fn prometheus_binary() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/bin/prometheus");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
}

fn a_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Prometheus scraping `exporter` every second and waits until the query API
/// answers `greenlight_test_error_ratio` from a scrape. `None` (after saying why on stderr)
/// when there is no `prometheus` binary, unless `GREENLIGHT_REQUIRE_PROMETHEUS=1`, which
/// turns that into a failure.
async fn prometheus(exporter: &str) -> Option<Prometheus> {
    let Some(binary) = prometheus_binary() else {
        let required =
            std::env::var("GREENLIGHT_REQUIRE_PROMETHEUS").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "GREENLIGHT_REQUIRE_PROMETHEUS is set but there is no prometheus binary \
             (neither /usr/bin/prometheus nor on PATH): install Debian's `prometheus` package \
             (apt-get install -y --no-install-recommends prometheus)"
        );
        eprintln!(
            "skipping: no prometheus binary (neither /usr/bin/prometheus nor on PATH); \
             install Debian's `prometheus` package to run this test, and set \
             GREENLIGHT_REQUIRE_PROMETHEUS=1 to make its absence a failure"
        );
        return None;
    };
    // The free port is only free when asked; should something take it before Prometheus
    // binds it, Prometheus exits and we try another.
    for _attempt in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: exporter\n    static_configs:\n      \
                 - targets: ['{exporter}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let port = a_free_port();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut server = Prometheus {
            child,
            address: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let client = HttpClient::new().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                let log = server.log();
                if log.contains("address already in use") {
                    break; // Try another port.
                }
                panic!("prometheus exited with {status} before it was ready:\n{log}");
            }
            let outcome =
                run_probe(&client, &metric(&server.address, ERROR_RATIO, None, None)).await;
            if outcome.ok {
                return Some(server);
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not answer {ERROR_RATIO} within {PATIENCE:?}; last probe: \
                 {last:?}\nits log:\n{}",
                server.log()
            );
            last = Some(outcome);
            tokio::time::sleep(POLL).await;
        }
    }
    panic!("prometheus could not bind a free loopback port in 5 attempts");
}

fn metric(address: &str, query: &str, below: Option<f64>, above: Option<f64>) -> ProbeRequest {
    ProbeRequest {
        id: ProbeId {
            environment: "prod".into(),
            purpose: ProbePurpose::Verify,
            kind: ProbeKind::Metric,
            name: "error-rate".into(),
            release: None,
        },
        target: ProbeTarget::Metric {
            address: address.into(),
            query: query.into(),
            below,
            above,
        },
        interval: Duration::from_secs(15),
    }
}

/// Probes until `done` holds, within [`PATIENCE`]; returns that outcome.
async fn probe_until(
    client: &HttpClient,
    request: &ProbeRequest,
    server: &Prometheus,
    what: &str,
    done: impl Fn(&Outcome) -> bool,
) -> Outcome {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let outcome = run_probe(client, request).await;
        if done(&outcome) {
            return outcome;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {PATIENCE:?}; last probe: {outcome:?}\nprometheus log:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn thresholds_are_judged_on_what_prometheus_answers() {
    let ratio = Gauge::new(0.07);
    let exporter = exporter(ratio).await;
    let Some(server) = prometheus(&exporter).await else {
        return;
    };
    let client = HttpClient::new().unwrap();
    let address = server.address.as_str();

    let below = run_probe(&client, &metric(address, ERROR_RATIO, Some(0.1), None)).await;
    assert_eq!(
        below,
        Outcome {
            ok: true,
            value: Some(0.07),
            message: "0.07 is within its thresholds".into(),
        }
    );

    let over = run_probe(&client, &metric(address, ERROR_RATIO, Some(0.05), None)).await;
    assert_eq!(
        over,
        Outcome {
            ok: false,
            value: Some(0.07),
            message: "0.07 is not below 0.05".into(),
        }
    );

    let above = run_probe(&client, &metric(address, ERROR_RATIO, None, Some(0.01))).await;
    assert_eq!(
        above,
        Outcome {
            ok: true,
            value: Some(0.07),
            message: "0.07 is within its thresholds".into(),
        }
    );
    let not_above = run_probe(&client, &metric(address, ERROR_RATIO, None, Some(0.5))).await;
    assert_eq!(
        not_above,
        Outcome {
            ok: false,
            value: Some(0.07),
            message: "0.07 is not above 0.5".into(),
        }
    );
    let between = run_probe(
        &client,
        &metric(address, ERROR_RATIO, Some(0.1), Some(0.01)),
    )
    .await;
    assert!(between.ok, "{between:?}");

    // PromQL computed by Prometheus: 5 failed of 100 requests.
    let computed = run_probe(&client, &metric(address, COMPUTED_RATIO, Some(0.06), None)).await;
    assert_eq!(
        computed,
        Outcome {
            ok: true,
            value: Some(0.05),
            message: "0.05 is within its thresholds".into(),
        }
    );
    let computed = run_probe(&client, &metric(address, COMPUTED_RATIO, Some(0.05), None)).await;
    assert_eq!(
        computed,
        Outcome {
            ok: false,
            value: Some(0.05),
            message: "0.05 is not below 0.05".into(),
        }
    );
}

#[tokio::test]
async fn an_empty_result_and_invalid_promql_fail_with_the_reason() {
    let exporter = exporter(Gauge::new(0.07)).await;
    let Some(server) = prometheus(&exporter).await else {
        return;
    };
    let client = HttpClient::new().unwrap();
    let address = server.address.as_str();

    let nothing = run_probe(
        &client,
        &metric(address, "greenlight_test_no_such_metric", Some(0.1), None),
    )
    .await;
    assert_eq!(
        nothing,
        Outcome {
            ok: false,
            value: None,
            message: "the query returned no series".into(),
        }
    );

    // Both request series: one sample each, so more than one series.
    let many = run_probe(
        &client,
        &metric(
            address,
            "greenlight_test_requests_total",
            Some(1000.0),
            None,
        ),
    )
    .await;
    assert_eq!(
        many,
        Outcome {
            ok: false,
            value: None,
            message: "the query returned 2 series; it must return one".into(),
        }
    );

    // Prometheus refuses this with HTTP 400 and a bad_data error, which the probe surfaces.
    let invalid = run_probe(
        &client,
        &metric(address, "sum(greenlight_test_error_ratio", Some(0.1), None),
    )
    .await;
    assert!(!invalid.ok, "{invalid:?}");
    assert_eq!(invalid.value, None);
    // The position and wording after "parse error" vary between Prometheus versions.
    let refusal = r#"Prometheus answered HTTP 400: {"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": "#;
    assert!(invalid.message.starts_with(refusal), "{invalid:?}");
    assert!(invalid.message.contains("parse error"), "{invalid:?}");
}

#[tokio::test]
async fn a_passing_probe_fails_once_the_scraped_value_crosses_its_threshold() {
    let ratio = Gauge::new(0.07);
    let exporter = exporter(ratio.clone()).await;
    let Some(server) = prometheus(&exporter).await else {
        return;
    };
    let client = HttpClient::new().unwrap();
    let request = metric(&server.address, ERROR_RATIO, Some(0.1), None);

    let before = run_probe(&client, &request).await;
    assert_eq!(
        before,
        Outcome {
            ok: true,
            value: Some(0.07),
            message: "0.07 is within its thresholds".into(),
        }
    );

    ratio.set(0.2);
    // Until the next scrape Prometheus still answers 0.07 (and the probe still passes);
    // it must never answer anything else.
    let after = probe_until(
        &client,
        &request,
        &server,
        "the new value 0.2 was not scraped",
        |outcome| {
            assert!(
                outcome.value == Some(0.07) || outcome.value == Some(0.2),
                "{outcome:?}"
            );
            outcome.value == Some(0.2)
        },
    )
    .await;
    assert_eq!(
        after,
        Outcome {
            ok: false,
            value: Some(0.2),
            message: "0.2 is not below 0.1".into(),
        }
    );

    // And back.
    ratio.set(0.03);
    let recovered = probe_until(
        &client,
        &request,
        &server,
        "the new value 0.03 was not scraped",
        |outcome| outcome.value == Some(0.03),
    )
    .await;
    assert_eq!(
        recovered,
        Outcome {
            ok: true,
            value: Some(0.03),
            message: "0.03 is within its thresholds".into(),
        }
    );
}
