//! HTTP and webhook probes against a real HTTP server on loopback.

use std::time::Duration;

use greenlight::{
    checks::{HttpClient, run_probe},
    engine::{ProbeId, ProbeKind, ProbePurpose, ProbeRequest, ProbeTarget},
};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// A tiny HTTP/1.1 server: `/healthz` 200, `/fail` 503, `/slow` answers after 5 s,
/// `/cab` approves (200) a POST naming release `shop-1-4-2` and refuses (403) others.
async fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut read = 0;
                // Read the head, then as much body as Content-Length says.
                loop {
                    let n = socket.read(&mut buffer[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buffer[..read]).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = match path.as_str() {
                    "/healthz" => ("200 OK", "ok"),
                    "/fail" => ("503 Service Unavailable", "down"),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        ("200 OK", "late")
                    }
                    "/cab" if request.contains("\"release\":\"shop-1-4-2\"") => {
                        ("200 OK", "approved")
                    }
                    "/cab" => ("403 Forbidden", "no change ticket for this release"),
                    _ => ("404 Not Found", "no"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

fn http(url: String, timeout: Duration) -> ProbeRequest {
    ProbeRequest {
        id: ProbeId {
            environment: "prod".into(),
            purpose: ProbePurpose::Verify,
            kind: ProbeKind::Http,
            name: "http[0]".into(),
            release: None,
        },
        target: ProbeTarget::Http {
            url,
            expect_status: 200,
            timeout,
        },
        interval: Duration::from_secs(15),
    }
}

fn webhook(url: String, release: &str) -> ProbeRequest {
    ProbeRequest {
        id: ProbeId {
            environment: "prod".into(),
            purpose: ProbePurpose::Gate,
            kind: ProbeKind::Webhook,
            name: "cab".into(),
            release: Some(release.into()),
        },
        target: ProbeTarget::Webhook {
            url,
            timeout: Duration::from_secs(2),
            payload: json!({"release": release, "environment": "prod"}),
        },
        interval: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_healthy_endpoint_passes_and_a_failing_one_says_what_it_answered() {
    let base = server().await;
    let client = HttpClient::new().unwrap();
    let ok = run_probe(
        &client,
        &http(format!("{base}/healthz"), Duration::from_secs(2)),
    )
    .await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.message, "HTTP 200");
    let bad = run_probe(
        &client,
        &http(format!("{base}/fail"), Duration::from_secs(2)),
    )
    .await;
    assert!(!bad.ok);
    assert_eq!(bad.message, "HTTP 503, expected 200");
}

#[tokio::test]
async fn a_slow_endpoint_fails_at_its_timeout() {
    let base = server().await;
    let client = HttpClient::new().unwrap();
    let outcome = run_probe(
        &client,
        &http(format!("{base}/slow"), Duration::from_millis(300)),
    )
    .await;
    assert!(!outcome.ok);
    assert_eq!(outcome.message, "no answer within 300ms", "{outcome:?}");
}

#[tokio::test]
async fn a_dead_endpoint_fails_with_the_connection_error() {
    // Bind and drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = HttpClient::new().unwrap();
    let outcome = run_probe(
        &client,
        &http(
            format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(2),
        ),
    )
    .await;
    assert!(!outcome.ok);
    assert!(outcome.message.starts_with("request failed"), "{outcome:?}");
}

#[tokio::test]
async fn a_webhook_passes_on_2xx_and_reports_the_refusal_otherwise() {
    let base = server().await;
    let client = HttpClient::new().unwrap();
    let approved = run_probe(&client, &webhook(format!("{base}/cab"), "shop-1-4-2")).await;
    assert!(approved.ok, "{approved:?}");
    let refused = run_probe(&client, &webhook(format!("{base}/cab"), "shop-1-4-3")).await;
    assert!(!refused.ok);
    assert_eq!(
        refused.message,
        "HTTP 403: no change ticket for this release"
    );
}
