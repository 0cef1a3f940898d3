//! The `/metrics` page of the long-running tools (`make-mirror`, `backup run`): served on each
//! `--listen-metrics-urls` URL, with the text a render function gives at each scrape.

use std::sync::Arc;

use crate::error::ClientError;

/// What a scrape answers: the page and its content type.
pub type Render = Arc<dyn Fn() -> (String, &'static str) + Send + Sync>;

/// Prometheus' text format, version 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics text (what `prometheus-client` encodes).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/metrics` on each `http://HOST:PORT` URL until the returned tasks are aborted.
pub async fn serve(
    urls: &[String],
    render: Render,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ClientError> {
    let mut tasks = Vec::new();
    for url in urls {
        let addr = url
            .strip_prefix("http://")
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "--listen-metrics-urls {url:?}: use http://HOST:PORT"
                ))
            })?
            .trim_end_matches('/');
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ClientError::Config(format!("cannot listen on {url} for metrics: {e}")))?;
        let render = render.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let render = render.clone();
                async move {
                    let (body, kind) = render();
                    ([(axum::http::header::CONTENT_TYPE, kind)], body)
                }
            }),
        );
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }
    Ok(tasks)
}
