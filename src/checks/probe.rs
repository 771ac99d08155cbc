//! One probe run: what a [`ProbeRequest`] asks, sent, and judged.

use serde_json::Value;

use super::client::HttpClient;
use crate::engine::{ProbeRequest, ProbeTarget};

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether it passed.
    pub ok: bool,
    /// The measured value, for metrics.
    pub value: Option<f64>,
    /// What was seen, in words.
    pub message: String,
}

impl Outcome {
    fn fail(message: String) -> Self {
        Self {
            ok: false,
            value: None,
            message,
        }
    }
}

/// Runs one probe.
pub async fn run_probe(client: &HttpClient, request: &ProbeRequest) -> Outcome {
    match &request.target {
        ProbeTarget::Http {
            url,
            expect_status,
            timeout,
        } => match client.get(url, *timeout).await {
            Ok(answer) if answer.status == *expect_status => Outcome {
                ok: true,
                value: None,
                message: format!("HTTP {}", answer.status),
            },
            Ok(answer) => {
                Outcome::fail(format!("HTTP {}, expected {expect_status}", answer.status))
            }
            Err(why) => Outcome::fail(why),
        },
        ProbeTarget::Webhook {
            url,
            timeout,
            payload,
        } => match client.post_json(url, payload, *timeout).await {
            Ok(answer) if (200..300).contains(&answer.status) => Outcome {
                ok: true,
                value: None,
                message: format!("HTTP {}", answer.status),
            },
            Ok(answer) => {
                let detail = String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(200)
                    .collect::<String>();
                Outcome::fail(format!("HTTP {}: {}", answer.status, detail.trim()))
            }
            Err(why) => Outcome::fail(why),
        },
        ProbeTarget::Metric {
            address,
            query,
            below,
            above,
        } => {
            let mut url = match url::Url::parse(address).and_then(|u| u.join("api/v1/query")) {
                Ok(url) => url,
                Err(e) => {
                    return Outcome::fail(format!("invalid Prometheus address {address:?}: {e}"));
                }
            };
            url.query_pairs_mut().append_pair("query", query);
            match client
                .get(url.as_str(), std::time::Duration::from_secs(10))
                .await
            {
                Ok(answer) if answer.status == 200 => {
                    match serde_json::from_slice::<Value>(&answer.body) {
                        Ok(json) => evaluate_prometheus(&json, *below, *above),
                        Err(e) => Outcome::fail(format!(
                            "Prometheus answered something that is not JSON: {e}"
                        )),
                    }
                }
                Ok(answer) => Outcome::fail(format!(
                    "Prometheus answered HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
                Err(why) => Outcome::fail(format!("Prometheus: {why}")),
            }
        }
    }
}

/// Judges a Prometheus `/api/v1/query` answer: one scalar or one-element vector, strictly
/// below `below` and above `above`.
pub fn evaluate_prometheus(answer: &Value, below: Option<f64>, above: Option<f64>) -> Outcome {
    if answer["status"] != "success" {
        return Outcome::fail(format!(
            "the query failed: {}",
            answer["error"].as_str().unwrap_or("unknown error")
        ));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => Some(&data["result"]),
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([one]) => Some(&one["value"]),
            Some([]) => return Outcome::fail("the query returned no series".into()),
            Some(many) => {
                return Outcome::fail(format!(
                    "the query returned {} series; it must return one",
                    many.len()
                ));
            }
            None => None,
        },
        other => {
            return Outcome::fail(format!(
                "the query returned a {}; it must return a scalar or one series",
                other.unwrap_or("nothing")
            ));
        }
    };
    let Some(value) = sample
        .and_then(|s| s[1].as_str())
        .and_then(|v| v.parse::<f64>().ok())
    else {
        return Outcome::fail("the answer holds no number".into());
    };
    if value.is_nan() {
        return Outcome::fail("the value is NaN (no data for the ratio?)".into());
    }
    let too_high = below.is_some_and(|b| value >= b);
    let too_low = above.is_some_and(|a| value <= a);
    let message = match (too_high, too_low) {
        (true, _) => format!("{value} is not below {}", below.unwrap_or_default()),
        (_, true) => format!("{value} is not above {}", above.unwrap_or_default()),
        _ => format!("{value} is within its thresholds"),
    };
    Outcome {
        ok: !too_high && !too_low,
        value: Some(value),
        message,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vector(value: &str) -> Value {
        json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1_700_000_000.0, value]}]}})
    }

    #[test]
    fn an_error_rate_below_its_threshold_passes() {
        let outcome = evaluate_prometheus(&vector("0.012"), Some(0.02), None);
        assert!(outcome.ok, "{outcome:?}");
        assert_eq!(outcome.value, Some(0.012));
    }

    #[test]
    fn at_the_threshold_fails_because_it_must_be_strictly_below() {
        let outcome = evaluate_prometheus(&vector("0.02"), Some(0.02), None);
        assert!(!outcome.ok);
        assert_eq!(outcome.message, "0.02 is not below 0.02");
    }

    #[test]
    fn scalars_ranges_and_bad_answers_are_judged() {
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "5"]}});
        assert!(evaluate_prometheus(&scalar, Some(10.0), Some(1.0)).ok);
        assert!(!evaluate_prometheus(&scalar, Some(10.0), Some(5.0)).ok);
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(
            evaluate_prometheus(&empty, Some(1.0), None).message,
            "the query returned no series"
        );
        let error =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"});
        assert!(
            evaluate_prometheus(&error, Some(1.0), None)
                .message
                .contains("parse error")
        );
        assert!(!evaluate_prometheus(&vector("NaN"), Some(1.0), None).ok);
    }
}
