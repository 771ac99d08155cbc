//! One small HTTP(S) client for every probe, each request bounded by its own timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// What an HTTP exchange returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body (at most [`MAX_BODY`] bytes are read).
    pub body: Bytes,
}

/// Bodies larger than this are cut: a probe needs a status and a small JSON answer.
pub const MAX_BODY: usize = 1024 * 1024;

/// The probes' HTTP client: `http://` and `https://` (system roots).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpClient {
    /// A client trusting the system's CA certificates.
    pub fn new() -> std::io::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The pooled hyper client underneath, for the load generator: it streams answers
    /// without buffering them and must tell a failed connect from other failures.
    pub(crate) fn pooled(&self) -> &Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        &self.inner
    }

    /// Sends `request`; an error or no answer within `timeout` is an `Err` in words.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status().as_u16();
            let limited = http_body_util::Limited::new(response.into_body(), MAX_BODY);
            let body = limited
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}",
                    crate::validation::format_duration(timeout)
                ))
            })
    }

    /// GET `url`.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<Answer, String> {
        let request = http::Request::get(url)
            .header("user-agent", "greenlight")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("invalid request: {e}"))?;
        self.send(request, timeout).await
    }

    /// POST `body` as JSON to `url`.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
        let request = http::Request::post(url)
            .header("content-type", "application/json")
            .header("user-agent", "greenlight")
            .body(Full::new(bytes))
            .map_err(|e| format!("invalid request: {e}"))?;
        self.send(request, timeout).await
    }
}
