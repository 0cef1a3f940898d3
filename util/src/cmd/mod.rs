//! One file per command; each turns flags into calls and hands rows to the printer.

pub mod alarm;
pub mod bench;
pub mod compaction;
pub mod defrag;
pub mod endpoint;
pub mod hashkv;
pub mod kv;
pub mod make_mirror;
pub mod member;
pub mod move_leader;
pub mod online;
pub mod snapshot;
pub mod status;

/// What every command gets from the global flags.
pub struct Global {
    pub endpoints: Vec<String>,
    pub command_timeout: std::time::Duration,
    pub format: crate::printer::Format,
}

/// The error for an endpoint that could not be reached, with every cause (tonic's own says
/// only "transport error"; the refused connection or unknown host is in its sources).
pub fn unreachable(endpoint: &str, e: tonic::transport::Error) -> anyhow::Error {
    let mut causes: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(cause) = next {
        let text = cause.to_string();
        // hyper and tonic repeat their source's text in their own
        if causes.last() != Some(&text) {
            causes.push(text);
        }
        next = cause.source();
    }
    anyhow::anyhow!("cannot connect to {endpoint}: {}", causes.join(": "))
}

/// The tonic endpoint for `HOST:PORT` or `http://HOST:PORT`, giving up connecting after
/// `connect_timeout`.
pub fn endpoint_of(
    endpoint: &str,
    connect_timeout: std::time::Duration,
) -> anyhow::Result<tonic::transport::Endpoint> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    Ok(tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| anyhow::anyhow!("bad endpoint {endpoint:?}: {e}"))?
        .connect_timeout(connect_timeout))
}

/// A gRPC channel to one endpoint (`HOST:PORT` or `http://HOST:PORT`).
pub async fn connect(
    endpoint: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<tonic::transport::Channel> {
    let ch = endpoint_of(endpoint, timeout)?
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    Ok(ch)
}
