//! `/metrics`, `/healthz` and `/readyz` on one port. Live means the process serves;
//! ready means the caches have synced and the replica leads or stands by (it is not
//! shutting down).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

use crate::metrics::Metrics;

/// What `/readyz` answers from.
#[derive(Debug, Default)]
pub struct Health {
    synced: AtomicBool,
    stopping: AtomicBool,
}

impl Health {
    /// The caches have their initial lists.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// The process is shutting down: take it out of service.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Ready to serve (as leader or standby).
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Acquire) && !self.stopping.load(Ordering::Acquire)
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Answers one request.
pub fn respond(
    metrics: &Metrics,
    health: &Health,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "only GET\n".into());
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" if health.is_ready() => text(StatusCode::OK, PLAIN, "ready\n".into()),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "not ready: the caches have not synced yet, or the process is stopping\n".into(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Binds `addr` (so a taken port fails at start, not later).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept a metrics connection");
                    continue;
                }
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&metrics, &health, request.method(), request.uri().path());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Scrapers and kubelet probes are short requests; a stuck client is cut off.
            if tokio::time::timeout(std::time::Duration::from_secs(30), connection)
                .await
                .is_err()
            {
                tracing::debug!("closed a metrics connection that stayed open too long");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_the_caches_and_ends_when_stopping() {
        let (metrics, health) = (Metrics::new(), Health::default());
        let ready = |h: &Health| respond(&metrics, h, &Method::GET, "/readyz").status();
        assert_eq!(ready(&health), StatusCode::SERVICE_UNAVAILABLE);
        health.set_synced();
        assert_eq!(ready(&health), StatusCode::OK);
        health.set_stopping();
        assert_eq!(ready(&health), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            respond(&metrics, &health, &Method::GET, "/healthz").status(),
            StatusCode::OK,
            "a stopping process is still alive"
        );
    }

    #[test]
    fn metrics_are_served_in_the_text_format() {
        let (metrics, health) = (Metrics::new(), Health::default());
        metrics.api_request("patch", "deployments", "ok");
        let response = respond(&metrics, &health, &Method::GET, "/metrics");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        assert_eq!(
            respond(&metrics, &health, &Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            respond(&metrics, &health, &Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
    }
}
