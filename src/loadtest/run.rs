//! The open-loop driver: starts each request at its scheduled instant as its own task,
//! whatever earlier requests are doing, and times it from that instant, so queueing
//! delay is measured rather than hidden (no coordinated omission).

use std::{
    error::Error as StdError,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::{sync::Semaphore, time::Instant};

use super::{
    LoadtestError, Options,
    report::Report,
    schedule::Schedule,
    stats::{ErrorKind, Outcome, Tally},
};
use crate::checks::HttpClient;

/// After an interrupt (SIGTERM from the kubelet), how long outstanding requests may
/// still finish before the report is written: well inside the default 30 s grace period.
pub const DRAIN_AFTER_INTERRUPT: Duration = Duration::from_secs(5);

/// Runs the load test in `options` until its schedule ends or `interrupt` resolves, and
/// judges it. Errors are setup problems (invalid options, no TLS roots); everything the
/// server does is a measurement in the report.
pub async fn run(
    options: &Options,
    interrupt: impl Future<Output = ()>,
) -> Result<Report, LoadtestError> {
    options
        .thresholds
        .validate()
        .map_err(LoadtestError::Invalid)?;
    let schedule = Schedule::new(
        options.rps,
        options.duration,
        options.timeout,
        options.max_in_flight,
    )?;
    let client = HttpClient::new().map_err(LoadtestError::Client)?;
    let template = Arc::new(options.request_template());
    let cap = schedule.max_in_flight();
    let permits = Arc::new(Semaphore::new(cap as usize));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let timeout = options.timeout;

    tokio::pin!(interrupt);
    let mut interrupted = false;
    let (mut due, mut sent) = (0u64, 0u64);
    let start = Instant::now();
    for index in 0..schedule.count() {
        let at = start + schedule.offset(index);
        tokio::select! {
            biased;
            () = &mut interrupt => {
                interrupted = true;
                break;
            }
            () = tokio::time::sleep_until(at) => {}
        }
        due += 1;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            record(
                &tally,
                Outcome::Failed {
                    kind: ErrorKind::Capacity,
                    detail: format!("{cap} requests were already in flight"),
                },
            );
            continue;
        };
        sent += 1;
        let (client, template, tally) = (client.clone(), template.clone(), tally.clone());
        tokio::spawn(async move {
            let exchange = exchange(&client, template.build());
            let outcome = match tokio::time::timeout_at(at + timeout, exchange).await {
                Ok(Ok(status)) => Outcome::Answered {
                    status,
                    latency: Instant::now().saturating_duration_since(at),
                },
                Ok(Err((kind, detail))) => Outcome::Failed { kind, detail },
                Err(_) => Outcome::TimedOut { after: timeout },
            };
            // Record before giving the permit back: holding every permit then means
            // every outcome is in the tally.
            record(&tally, outcome);
            drop(permit);
        });
    }
    let dispatch_time = start.elapsed();

    // Every request is bounded by its deadline, so this wait is too.
    let drained = permits.acquire_many(cap);
    tokio::pin!(drained);
    if !interrupted {
        tokio::select! {
            _ = &mut drained => {}
            () = &mut interrupt => interrupted = true,
        }
    }
    if interrupted {
        let _ = tokio::time::timeout(DRAIN_AFTER_INTERRUPT, &mut drained).await;
    }
    let elapsed = start.elapsed();

    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
    let (mut counts, latency) = tally.finish();
    counts.due = due;
    counts.sent = sent;
    let covered = if interrupted {
        schedule.covered(due)
    } else {
        options.duration
    };
    // Started per second over the time starting them took; an on-time run started its
    // last request one interval before the end of the schedule, hence the maximum.
    let sending_time = dispatch_time.max(schedule.covered(due)).as_secs_f64();
    let achieved_rps = if sending_time > 0.0 {
        sent as f64 / sending_time
    } else {
        0.0
    };
    let checks = options.thresholds.evaluate(counts.error_rate(), &latency);
    Ok(Report {
        method: options.method().to_string(),
        url: options.url.to_string(),
        rps: options.rps,
        duration: options.duration,
        covered,
        payload: options.payload,
        timeout,
        max_in_flight: cap,
        interrupted,
        elapsed,
        achieved_rps,
        counts,
        latency,
        checks,
    })
}

fn record(tally: &Mutex<Tally>, outcome: Outcome) {
    tally
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(outcome);
}

/// One request and its whole answer, read and dropped as it streams in. Connect failures
/// are told apart from failures after the connection was up.
async fn exchange(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
) -> Result<u16, (ErrorKind, String)> {
    let response = client.pooled().request(request).await.map_err(|error| {
        let kind = if error.is_connect() {
            ErrorKind::Connect
        } else {
            ErrorKind::Transport
        };
        (kind, chain(&error))
    })?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|error| {
            (
                ErrorKind::Transport,
                format!("reading the answer failed: {}", chain(&error)),
            )
        })?;
    }
    Ok(status)
}

/// An error and its sources, `: `-separated, since hyper's own message is only the
/// outermost layer ("client error (Connect)").
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The parts every request shares; the body is one reference-counted buffer.
#[derive(Debug, Clone)]
pub(crate) struct RequestTemplate {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

impl RequestTemplate {
    fn build(&self) -> http::Request<Full<Bytes>> {
        let mut request = http::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}
