//! `greenlight loadtest` against real HTTP servers on loopback: what the server sees is
//! compared with what the report says, and the open-loop schedule is checked against a
//! server that slows down or serves one request at a time.

use std::{
    convert::Infallible,
    process::Command,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use clap::Parser;
use greenlight::loadtest::{self, ErrorKind, Options, Report};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, time::Instant};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// One request as the server saw it.
struct Arrival {
    /// When its head arrived.
    at: Instant,
    method: String,
    body_len: usize,
}

/// What a test server saw and did.
#[derive(Default)]
struct Seen {
    arrivals: Mutex<Vec<Arrival>>,
    /// Answers with status 500 or above.
    failures: AtomicU64,
    /// Answers delayed by the behaviour.
    delayed: AtomicU64,
}

impl Seen {
    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    fn times(&self) -> Vec<Instant> {
        let mut times: Vec<Instant> = self.arrivals.lock().unwrap().iter().map(|a| a.at).collect();
        times.sort();
        times
    }
}

/// What the server does with its n-th request (from 0), arriving `since_first` after
/// the first one: the status to answer and how long to wait before answering.
type Behaviour = dyn Fn(u64, Duration) -> (u16, Duration) + Send + Sync;

/// A hyper HTTP/1 server on 127.0.0.1:0 that records every arrival. With `serial`, it
/// handles one request at a time (the others queue), like a single-threaded backend.
async fn serve(
    behaviour: impl Fn(u64, Duration) -> (u16, Duration) + Send + Sync + 'static,
    serial: bool,
) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/echo", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let behaviour: Arc<Behaviour> = Arc::new(behaviour);
    let next = Arc::new(AtomicU64::new(0));
    let first = Arc::new(OnceLock::<Instant>::new());
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let state = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, behaviour, next, first, one_at_a_time) = (
                state.clone(),
                behaviour.clone(),
                next.clone(),
                first.clone(),
                one_at_a_time.clone(),
            );
            let service = service_fn(move |request: Request<Incoming>| {
                let (seen, behaviour, next, first, one_at_a_time) = (
                    seen.clone(),
                    behaviour.clone(),
                    next.clone(),
                    first.clone(),
                    one_at_a_time.clone(),
                );
                async move {
                    let at = Instant::now();
                    let since_first = at - *first.get_or_init(|| at);
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let method = request.method().to_string();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    seen.arrivals.lock().unwrap().push(Arrival {
                        at,
                        method,
                        body_len: body.len(),
                    });
                    let (status, delay) = behaviour(n, since_first);
                    let _turn = if serial {
                        Some(one_at_a_time.lock().await)
                    } else {
                        None
                    };
                    if !delay.is_zero() {
                        seen.delayed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                    }
                    if status >= 500 {
                        seen.failures.fetch_add(1, Ordering::SeqCst);
                    }
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn healthy(_: u64, _: Duration) -> (u16, Duration) {
    (200, Duration::ZERO)
}

async fn run(options: &Options) -> Report {
    loadtest::run(options, std::future::pending())
        .await
        .unwrap()
}

fn options(url: &str, rps: f64, duration: Duration) -> Options {
    Options::new(url, rps, duration).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_server_receives_every_scheduled_request_with_its_payload() {
    for (payload, rps, duration) in [(1024, 200.0, MS(1000)), (65_536, 100.0, MS(500))] {
        let (url, seen) = serve(healthy, false).await;
        let mut options = options(&url, rps, duration);
        options.payload = Some(payload);
        let report = run(&options).await;

        let planned = (rps * duration.as_secs_f64()) as u64;
        // Every due request was sent, reached the server and was answered: on loopback
        // nothing is lost, so the counts are exact.
        assert_eq!(report.counts.due, planned);
        assert_eq!(report.counts.sent, planned);
        assert_eq!(report.counts.completed, planned);
        assert_eq!(seen.count() as u64, planned, "the server's own count");
        let arrivals = seen.arrivals.lock().unwrap();
        assert!(arrivals.iter().all(|a| a.method == "POST"));
        let short: Vec<usize> = arrivals
            .iter()
            .map(|a| a.body_len)
            .filter(|len| *len as u64 != payload)
            .collect();
        assert!(short.is_empty(), "bodies of the wrong length: {short:?}");
        drop(arrivals);

        assert_eq!(report.counts.error_count(), 0);
        assert_eq!(report.counts.error_rate(), 0.0);
        assert_eq!(report.counts.statuses.get(&200), Some(&planned));
        assert_eq!(report.latency.samples, planned);
        assert!(report.passed(), "{}", loadtest::render_text(&report));
        // Sent on schedule: only a dispatch loop a quarter of the run late would fall
        // below 80% of the rate; above the rate is impossible by construction.
        assert!(
            report.achieved_rps <= rps + 1e-9 && report.achieved_rps >= 0.8 * rps,
            "achieved {} of {rps} rps",
            report.achieved_rps
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_twentieth_request_failing_is_an_error_rate_of_five_percent() {
    let (url, seen) = serve(
        |n, _| (if (n + 1) % 20 == 0 { 500 } else { 200 }, Duration::ZERO),
        false,
    )
    .await;
    let report = run(&options(&url, 200.0, MS(1000))).await;

    // All 200 requests arrive, so the server fails exactly 10 of them: the rate is
    // exactly 10/200, not merely close to it.
    assert_eq!(seen.count(), 200);
    let failures = seen.failures.load(Ordering::SeqCst);
    assert_eq!(failures, 10);
    assert_eq!(report.counts.errors_of(ErrorKind::Http5xx), failures);
    assert_eq!(report.counts.error_count(), failures);
    assert!((report.counts.error_rate() - 0.05).abs() < 1e-12);
    assert_eq!(report.counts.statuses.get(&500), Some(&10));
    assert_eq!(report.counts.statuses.get(&200), Some(&190));
    // The default threshold is seed 003's 2%.
    assert!(!report.passed());
    assert_eq!(report.failures(), ["error rate 0.0500 > 0.02"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_slows_down_keeps_receiving_requests_on_schedule() {
    // After its first half second, every answer takes 300 ms.
    let (url, seen) = serve(
        |_, since_first| {
            let delay = if since_first >= MS(500) {
                MS(300)
            } else {
                Duration::ZERO
            };
            (200, delay)
        },
        false,
    )
    .await;
    let report = run(&options(&url, 100.0, MS(1500))).await;

    assert_eq!(seen.count(), 150);
    assert_eq!(report.counts.completed, 150);
    let times = seen.times();
    // Open loop: the 100 requests due in the slow second still arrive within it. A
    // closed loop would have sent each only when an answer came back, 300 ms apart per
    // connection.
    let slow_phase = times
        .iter()
        .filter(|t| **t >= times[0] + MS(500) && **t < times[0] + MS(1500))
        .count();
    assert!(slow_phase >= 90, "{slow_phase} arrivals in the slow second");
    // Two thirds of the requests waited 300 ms, so the median and above show it.
    let delayed = seen.delayed.load(Ordering::SeqCst);
    assert!(delayed > 75, "{delayed} slow answers");
    for percentile in [50, 95, 99] {
        let measured = report.latency.percentile(percentile).unwrap();
        assert!(measured >= MS(300), "p{percentile} {measured:?}");
    }
    assert!(report.latency.max.unwrap() < report.timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_server_shows_its_queue_in_the_latency() {
    // One request at a time, 20 ms each: at 100 rps the queue grows by one every 20 ms.
    let (url, seen) = serve(|_, _| (200, MS(20)), true).await;
    let report = run(&options(&url, 100.0, MS(1000))).await;

    assert_eq!(seen.count(), 100);
    assert_eq!(report.counts.completed, 100);
    let times = seen.times();
    // Sent on schedule (~0.99 s for all 100) although serving them takes 2 s.
    let spread = times[99] - times[0];
    assert!(spread < MS(1500), "arrivals spread over {spread:?}");
    // Served in order, request i cannot finish before 20 ms × (i + 1) yet was due at
    // 10 ms × i: it waited at least 10 ms × i + 20 ms, measured from its schedule. So
    // the median is at least ~510 ms and p95 ~960 ms; the bounds below leave room.
    let at = |p| report.latency.percentile(p).unwrap();
    assert!(at(50) >= MS(400), "p50 {:?}", at(50));
    assert!(at(95) >= MS(800), "p95 {:?}", at(95));
    assert!(report.latency.max.unwrap() >= MS(900));
    assert_eq!(report.counts.error_count(), 0);
}

/// One thread for everything: a task that blocks it stalls the generator itself.
#[tokio::test(flavor = "current_thread")]
async fn a_late_generator_counts_its_own_delay_from_the_schedule() {
    let (url, seen) = serve(healthy, false).await;
    // Runs at the generator's first await, right after the schedule starts, and holds
    // the only thread for 200 ms: requests due meanwhile go out late, all at once.
    tokio::spawn(async { std::thread::sleep(MS(200)) });
    let report = run(&options(&url, 100.0, MS(500))).await;

    assert_eq!(seen.count(), 50);
    assert_eq!(report.counts.completed, 50);
    // Request 1 was due at 10 ms and could not leave before 200 ms: timed from its
    // schedule it took at least 190 ms, though the server answered at once. Timed from
    // the moment it was sent it would read about a millisecond.
    let max = report.latency.max.unwrap();
    assert!(max >= MS(190), "max {max:?}");
    // Requests 1..=15 waited at least 50 ms each: 15 of 50 samples, so p95 shows it.
    let p95 = report.latency.p95.unwrap();
    assert!(p95 >= MS(50), "p95 {p95:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_and_past_their_timeout_are_errors() {
    // A server that never answers within the test.
    let (url, seen) = serve(|_, _| (200, Duration::from_secs(3600)), false).await;
    let mut options = options(&url, 100.0, MS(1000));
    options.timeout = MS(300);
    options.max_in_flight = Some(5);
    let report = run(&options).await;

    let counts = &report.counts;
    assert_eq!(counts.due, 100);
    assert_eq!(counts.completed, 0);
    // Each of the 5 slots is held 300 ms per request, so at most 4 rounds fit in the
    // second: between 5 and 20 requests were sent, the rest refused at the cap.
    assert!((5..=20).contains(&counts.sent), "sent {}", counts.sent);
    assert_eq!(counts.errors_of(ErrorKind::Timeout), counts.sent);
    assert_eq!(counts.errors_of(ErrorKind::Capacity), 100 - counts.sent);
    assert_eq!(counts.error_rate(), 1.0);
    assert!(seen.count() as u64 <= counts.sent);
    // A timeout counts at the timeout.
    assert_eq!(report.latency.p50, Some(MS(300)));
    assert!(
        counts.first_failure[&ErrorKind::Capacity].contains("5 requests were already in flight")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_connect_error_and_leaves_latency_unmeasured() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut options = options(&format!("http://127.0.0.1:{port}/"), 20.0, MS(500));
    options.thresholds.max_p95 = Some(MS(1500));
    let report = run(&options).await;

    assert_eq!(report.counts.errors_of(ErrorKind::Connect), 10);
    assert_eq!(report.counts.completed, 0);
    assert_eq!(report.latency.samples, 0);
    assert_eq!(
        report.failures(),
        ["error rate 1.0000 > 0.02", "p95 unmeasured (no answers)"]
    );
    assert!(loadtest::summary_line(&report).contains("p50 n/a p95 n/a p99 n/a"));
}

/// Runs the real binary with `args` (blocking, off the runtime that serves the test
/// server) and returns its exit status, stdout and stderr.
async fn greenlight(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_greenlight"))
            .arg("loadtest")
            .args(&args)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violated_thresholds_exit_1_and_say_failed_with_the_figures() {
    // Every answer takes 50 ms and every 20th is a 500.
    let (url, seen) = serve(
        |n, _| (if (n + 1) % 20 == 0 { 500 } else { 200 }, MS(50)),
        false,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("termination-log");
    let (status, stdout, stderr) = greenlight(args(&[
        "--url",
        &url,
        "--rps",
        "100",
        "--duration",
        "1s",
        "--max-error-rate",
        "0.02",
        "--max-p95",
        "20ms",
        "--termination-message-path",
        message.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert_eq!(seen.count(), 100);
    let line = std::fs::read_to_string(&message).unwrap();
    let pattern = regex::Regex::new(
        r"^failed: error rate 0\.0500 > 0\.02, p95 (\d+)ms > 20ms; 100 requests at 100 rps for 1s, errors 5 \(0\.0500\), p50 \d+ms p95 (\d+)ms p99 \d+ms$",
    )
    .unwrap();
    let captures = pattern.captures(&line).unwrap_or_else(|| panic!("{line}"));
    let p95: u64 = captures[1].parse().unwrap();
    assert!(p95 >= 50, "{line}");
    assert_eq!(&captures[1], &captures[2]);
    assert!(
        stdout.contains("result      failed: error rate 0.0500 > 0.02"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn met_thresholds_exit_0_and_say_passed_with_json_for_machines() {
    let (url, seen) = serve(healthy, false).await;
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("termination-log");
    let (status, stdout, stderr) = greenlight(args(&[
        "--url",
        &url,
        "--rps",
        "100",
        "--duration",
        "1s",
        "--payload",
        "1KiB",
        "--max-p95",
        "1.5s",
        "--max-p99",
        "3s",
        "--output",
        "json",
        "--termination-message-path",
        message.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(status, 0, "{stdout}{stderr}");
    let line = std::fs::read_to_string(&message).unwrap();
    assert!(
        line.starts_with("passed: 100 requests at 100 rps for 1s, errors 0 (0.0000), p50 "),
        "{line}"
    );
    assert!(line.len() < 1024 && !line.contains('\n'));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["verdict"], "passed");
    assert_eq!(json["summary"], line.as_str());
    assert_eq!(json["requests"], seen.count() as u64);
    assert_eq!(json["target"]["method"], "POST");
    assert_eq!(json["plan"]["payloadBytes"], 1024);
    assert_eq!(json["thresholds"][1]["metric"], "p95");
    assert_eq!(json["thresholds"][1]["limitMs"], 1500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_is_a_usage_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("termination-log");
    let (status, stdout, stderr) = greenlight(args(&[
        "--url",
        "auth.sanctum-staging.svc:8080/api/echo",
        "--rps",
        "10",
        "--duration",
        "1s",
        "--termination-message-path",
        message.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(status, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("only http and https are supported"),
        "{stderr}"
    );
    let line = std::fs::read_to_string(&message).unwrap();
    assert!(line.starts_with("error: --url "), "{line}");

    let (status, _, stderr) = greenlight(args(&[
        "--url",
        "http://127.0.0.1:1/",
        "--rps",
        "10",
        "--duration",
        "1s",
        "--payload",
        "64XB",
    ]))
    .await;
    assert_eq!(status, 2);
    assert!(stderr.contains("unknown unit \"XB\""), "{stderr}");
}

/// The flags as `greenlight loadtest` parses them.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: loadtest::Args,
}

#[test]
fn the_nightly_example_runs_seed_003s_tests_with_real_flags() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nightly-smoke-promotion/pipeline.yaml"
    );
    let pipeline: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let main = &pipeline["spec"]["environments"][1];
    let tests = main["gates"]["tests"].as_sequence().unwrap();
    let mut seen = Vec::new();
    for test in tests {
        let container = &test["template"]["template"]["spec"]["containers"][0];
        let argv: Vec<&str> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(argv[0], "loadtest");
        let flags = Flags::try_parse_from(
            std::iter::once("greenlight-loadtest").chain(argv[1..].iter().copied()),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", test["name"].as_str().unwrap()));
        let options = Options::from_args(&flags.args).unwrap();
        seen.push((
            test["name"].as_str().unwrap().to_owned(),
            options.rps,
            options.duration,
            options.payload,
            options.thresholds.max_error_rate,
            options.thresholds.max_p95,
            options.thresholds.max_p99,
        ));
    }
    let s = Duration::from_secs;
    assert_eq!(
        seen,
        [
            (
                "load-1kib".into(),
                1000.0,
                s(120),
                Some(1024),
                0.02,
                Some(MS(1500)),
                None
            ),
            (
                "load-64kib".into(),
                1000.0,
                s(120),
                Some(65_536),
                0.02,
                Some(MS(1500)),
                None
            ),
            (
                "soak".into(),
                500.0,
                s(900),
                None,
                0.02,
                Some(MS(1500)),
                Some(s(3))
            ),
        ]
    );
}
