//! One file per command; each turns flags into calls and hands rows to the printer.

pub mod endpoint;
pub mod snapshot;

/// A gRPC channel to one endpoint (`HOST:PORT` or `http://HOST:PORT`).
pub async fn connect(
    endpoint: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<tonic::transport::Channel> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let ch = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| anyhow::anyhow!("bad endpoint {endpoint:?}: {e}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {endpoint}: {e}"))?;
    Ok(ch)
}
