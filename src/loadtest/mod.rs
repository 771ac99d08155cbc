//! `greenlight loadtest`: an open-loop HTTP load and soak generator for a Pipeline's test
//! Jobs. It sends requests on a fixed schedule, judges error rate and latency percentiles
//! against thresholds, and reports through its exit status and the termination message.
//!
//! Errors are HTTP status >= 400 (3xx counts as success), timeouts, connect and
//! transport failures, and requests not sent because the in-flight cap was full.

pub mod report;
mod run;
pub mod schedule;
pub mod size;
pub mod stats;
pub mod termination;
pub mod thresholds;

use std::{future::Future, path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};

pub use report::{Report, format_latency, go_duration, render_text, summary_line, to_json};
pub use run::run;
pub use size::parse_size;
pub use stats::{Counts, ErrorKind, LatencySummary, nearest_rank};
pub use termination::Destination;
pub use thresholds::{Check, DEFAULT_MAX_ERROR_RATE, Thresholds};

use crate::validation::parse_duration;

/// Exit status: every threshold met.
pub const EXIT_PASSED: u8 = 0;
/// Exit status: a threshold violated (or the run interrupted).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: usage or setup error; nothing was measured.
pub const EXIT_USAGE: u8 = 2;

/// What can stop a load test before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The target URL cannot be requested.
    #[error("--url {url:?} is not usable: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A flag's value is out of range or malformed; the message names the flag.
    #[error("{0}")]
    Invalid(String),
    /// The HTTP client could not be built (no CA certificates could be loaded).
    #[error("could not set up the HTTP client: {0}")]
    Client(#[source] std::io::Error),
}

/// Command-line flags of `greenlight loadtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The URL to load: http:// or https://.
    #[arg(long)]
    pub url: String,
    /// Requests per second. Request i starts at start + i/rps whatever the server does
    /// (open loop).
    #[arg(long)]
    pub rps: f64,
    /// How long to send requests, such as 2m, 15m or 90s.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    /// Request body size, such as 1KiB, 64KiB or 1MiB. With a payload the method
    /// defaults to POST.
    #[arg(long, value_parser = parse_size)]
    pub payload: Option<u64>,
    /// HTTP method. Default: POST with --payload, GET without.
    #[arg(long)]
    pub method: Option<String>,
    /// An extra request header, "Name: value". Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Per request, counted from its scheduled time; a later answer is a timeout error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Cap on requests in flight; a request due while it is full is not sent and counts
    /// as an error. Default: rps × timeout.
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// Highest error rate that passes, a fraction (0.02 is 2%).
    #[arg(long, default_value_t = DEFAULT_MAX_ERROR_RATE)]
    pub max_error_rate: f64,
    /// Highest median latency that passes, such as 200ms.
    #[arg(long, value_parser = parse_duration)]
    pub max_p50: Option<Duration>,
    /// Highest 95th percentile latency that passes, such as 1.5s.
    #[arg(long, value_parser = parse_duration)]
    pub max_p95: Option<Duration>,
    /// Highest 99th percentile latency that passes, such as 3s.
    #[arg(long, value_parser = parse_duration)]
    pub max_p99: Option<Duration>,
    /// Where to write the one-line summary for Kubernetes. Default:
    /// /dev/termination-log, skipped when it does not exist.
    #[arg(long)]
    pub termination_message_path: Option<PathBuf>,
    /// text (a report for people) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// A validated load test: what to send, how fast, for how long, and what passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Target (http or https, with a host).
    pub url: Uri,
    /// Method; `None` means POST with a payload, GET without.
    pub method: Option<Method>,
    /// Extra headers, sent with every request.
    pub headers: HeaderMap,
    /// Body size in bytes.
    pub payload: Option<u64>,
    /// Requests per second.
    pub rps: f64,
    /// How long to send.
    pub duration: Duration,
    /// Per-request timeout from the scheduled time.
    pub timeout: Duration,
    /// Cap on requests in flight; `None` means rps × timeout.
    pub max_in_flight: Option<u32>,
    /// What passes.
    pub thresholds: Thresholds,
}

impl Options {
    /// A GET load test of `url` with default timeout (10 s) and thresholds (error rate
    /// 0.02); the other fields are public to adjust. Rate and duration are checked when
    /// the run starts.
    pub fn new(url: &str, rps: f64, duration: Duration) -> Result<Self, LoadtestError> {
        Ok(Self {
            url: parse_url(url)?,
            method: None,
            headers: HeaderMap::new(),
            payload: None,
            rps,
            duration,
            timeout: Duration::from_secs(10),
            max_in_flight: None,
            thresholds: Thresholds::default(),
        })
    }

    /// Validates the command line.
    pub fn from_args(args: &Args) -> Result<Self, LoadtestError> {
        let mut options = Self::new(&args.url, args.rps, args.duration)?;
        options.method = args
            .method
            .as_deref()
            .map(|text| {
                Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
                    LoadtestError::Invalid(format!(
                        "--method {text:?} is not an HTTP method such as GET or POST"
                    ))
                })
            })
            .transpose()?;
        for text in &args.headers {
            let (name, value) = parse_header(text)?;
            options.headers.append(name, value);
        }
        options.payload = args.payload;
        options.timeout = args.timeout;
        options.max_in_flight = args.max_in_flight;
        options.thresholds = Thresholds {
            max_error_rate: args.max_error_rate,
            max_p50: args.max_p50,
            max_p95: args.max_p95,
            max_p99: args.max_p99,
        };
        Ok(options)
    }

    /// The method sent: as given, else POST with a payload and GET without.
    pub fn method(&self) -> Method {
        match (&self.method, self.payload) {
            (Some(method), _) => method.clone(),
            (None, Some(_)) => Method::POST,
            (None, None) => Method::GET,
        }
    }

    /// What every request carries: the headers given, plus a user agent and, with a
    /// payload, an octet-stream content type unless those were given.
    fn request_template(&self) -> run::RequestTemplate {
        let mut headers = self.headers.clone();
        headers
            .entry(header::USER_AGENT)
            .or_insert(HeaderValue::from_static(concat!(
                "greenlight-loadtest/",
                env!("CARGO_PKG_VERSION")
            )));
        if self.payload.is_some() {
            headers
                .entry(header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/octet-stream"));
        }
        run::RequestTemplate {
            method: self.method(),
            uri: self.url.clone(),
            headers,
            body: payload_bytes(self.payload.unwrap_or(0)),
        }
    }
}

/// `len` bytes of printable text, so that echo services and logs show something legible.
fn payload_bytes(len: u64) -> Bytes {
    const PATTERN: &[u8] = b"greenlight loadtest payload 0123456789abcdefghijklmnopqrstuvwxyz\n";
    PATTERN.iter().copied().cycle().take(len as usize).collect()
}

fn parse_url(text: &str) -> Result<Uri, LoadtestError> {
    let invalid = |reason: String| LoadtestError::InvalidUrl {
        url: text.to_owned(),
        reason,
    };
    let url = url::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme is {:?}; only http and https are supported",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".into()));
    }
    Uri::try_from(url.as_str()).map_err(|e| invalid(e.to_string()))
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), LoadtestError> {
    let invalid = |reason: &str| {
        LoadtestError::Invalid(format!(
            "--header {text:?} is not usable: {reason}; expected \"Name: value\""
        ))
    };
    let (name, value) = text.split_once(':').ok_or_else(|| invalid("no colon"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| invalid("the name is not a valid header name"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| invalid("the value has characters a header cannot carry"))?;
    Ok((name, value))
}

/// The whole subcommand: validate, run until done or `interrupt`, print the report, write
/// the termination message, and return the exit status ([`EXIT_PASSED`], [`EXIT_FAILED`]
/// or [`EXIT_USAGE`]).
pub async fn cli(args: Args, interrupt: impl Future<Output = ()>) -> u8 {
    let destination = args
        .termination_message_path
        .clone()
        .map_or(Destination::Default, Destination::Explicit);
    let started = match Options::from_args(&args) {
        Ok(options) => run(&options, interrupt).await,
        Err(error) => Err(error),
    };
    let report = match started {
        Ok(report) => report,
        Err(error) => {
            eprintln!("greenlight loadtest: {error}");
            terminate(&destination, &format!("error: {error}"));
            return EXIT_USAGE;
        }
    };
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&report)).unwrap_or_default()
        );
    } else {
        print!("{}", render_text(&report));
    }
    terminate(&destination, &summary_line(&report));
    if report.passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    }
}

fn terminate(destination: &Destination, message: &str) {
    if let Err(warning) = termination::write(destination, message) {
        eprintln!("greenlight loadtest: warning: {warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(parse_url("http://127.0.0.1:8080/api/echo").is_ok());
        assert!(parse_url("https://shop.example.com/").is_ok());
        let message = |text| parse_url(text).unwrap_err().to_string();
        assert!(message("auth.svc:8080/echo").contains("only http and https"));
        assert!(message("not a url").contains("--url \"not a url\" is not usable"));
        assert!(message("ftp://files.example.com/").contains("\"ftp\""));
        assert!(message("http://").contains("--url"));
    }

    #[test]
    fn the_method_follows_the_payload_unless_given() {
        let mut options = Options::new("http://x.test/", 1.0, Duration::from_secs(1)).unwrap();
        assert_eq!(options.method(), Method::GET);
        options.payload = Some(1024);
        assert_eq!(options.method(), Method::POST);
        options.method = Some(Method::PUT);
        assert_eq!(options.method(), Method::PUT);
    }

    #[test]
    fn payloads_have_the_requested_length_and_a_content_type() {
        let mut options = Options::new("http://x.test/", 1.0, Duration::from_secs(1)).unwrap();
        options.payload = Some(65_536);
        let template = options.request_template();
        assert_eq!(template.body.len(), 65_536);
        assert_eq!(
            template.headers[header::CONTENT_TYPE],
            "application/octet-stream"
        );
        assert!(
            template.headers[header::USER_AGENT]
                .to_str()
                .unwrap()
                .starts_with("greenlight-loadtest/")
        );
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        let (name, value) = parse_header("Authorization: Bearer abc").unwrap();
        assert_eq!(name, header::AUTHORIZATION);
        assert_eq!(value, "Bearer abc");
        assert!(
            parse_header("Authorization Bearer")
                .unwrap_err()
                .to_string()
                .contains("no colon")
        );
        assert!(parse_header("bad name: x").is_err());
    }
}
