//! Direct gRPC access to a server through the generated tonic clients, dialed by the
//! workspace's client library (`cairn_client`), plain or TLS.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use cairn_client::{ClientConfig, ClientError, Dialer};
use cairn_proto::etcdserverpb::{
    AuthenticateRequest, StatusRequest, StatusResponse, auth_client::AuthClient,
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use cairn_proto::v3electionpb::election_client::ElectionClient;
use cairn_proto::v3lockpb::lock_client::LockClient;
use tokio::runtime::Runtime;
use tonic::transport::Channel;

use crate::pki::ServerTls;

/// One client per service, all sharing a channel to one server.
#[derive(Clone)]
pub struct Clients {
    pub kv: KvClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub cluster: ClusterClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
    pub auth: AuthClient<Channel>,
    pub lock: LockClient<Channel>,
    pub election: ElectionClient<Channel>,
}

impl Clients {
    /// Connects to `endpoint` (`127.0.0.1:<port>`); every call times out after 10 s.
    pub async fn connect(endpoint: &str) -> Result<Self, ClientError> {
        Self::connect_tls(endpoint, None).await
    }

    /// Like [`Clients::connect`], over TLS with the harness's client certificate when
    /// `tls` is given.
    pub async fn connect_tls(endpoint: &str, tls: Option<&ServerTls>) -> Result<Self, ClientError> {
        let channel = dialer(endpoint, tls, Duration::from_secs(10))?
            .channel(endpoint, true)
            .await?;
        Ok(Self::from_channel(channel))
    }

    /// `Auth/Authenticate`: the token to send with [`with_token`] as `name`.
    pub async fn authenticate(
        &mut self,
        name: &str,
        password: &str,
    ) -> Result<String, tonic::Status> {
        let req = AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        };
        Ok(self.auth.authenticate(req).await?.into_inner().token)
    }

    pub fn from_channel(channel: Channel) -> Self {
        Clients {
            kv: KvClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            cluster: ClusterClient::new(channel.clone()),
            maintenance: MaintenanceClient::new(channel.clone()),
            auth: AuthClient::new(channel.clone()),
            lock: LockClient::new(channel.clone()),
            election: ElectionClient::new(channel),
        }
    }
}

/// `msg` with etcd's `token` metadata, as clientv3 sends the token `Auth/Authenticate` gave
/// (for tests that hold on to a token, e.g. across a permission change; `cairn_client`
/// authenticates by itself when its config has a user).
pub fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    let value = token.parse().expect("an auth token is ASCII");
    req.metadata_mut().insert("token", value);
    req
}

/// The client library's dialer for one endpoint: TLS with the harness's client certificate
/// when `tls` is given, every call bounded by `timeout`.
pub fn dialer(
    endpoint: &str,
    tls: Option<&ServerTls>,
    timeout: Duration,
) -> Result<Dialer, ClientError> {
    let mut cfg = ClientConfig::new([endpoint]);
    cfg.command_timeout = timeout;
    if let Some(tls) = tls {
        cfg.tls = tls.client_options();
    }
    Dialer::new(cfg)
}

/// A plaintext HTTP/2 channel to `endpoint` with per-call `timeout`.
pub async fn channel(endpoint: &str, timeout: Duration) -> Result<Channel, ClientError> {
    dialer(endpoint, None, timeout)?
        .channel(endpoint, true)
        .await
}

/// A channel to the first of a benchmark tool's comma-separated `--endpoints`, its calls not
/// bounded (the tools time them).
pub async fn bench_channel(endpoints: &str) -> anyhow::Result<Channel> {
    let endpoint = endpoints.split(',').next().unwrap_or_default();
    Ok(Dialer::new(ClientConfig::new([endpoint]))?
        .channel(endpoint, false)
        .await?)
}

/// One `Maintenance/Status` call from synchronous code.
pub fn status_blocking(endpoint: &str, timeout: Duration) -> anyhow::Result<StatusResponse> {
    status_blocking_tls(endpoint, None, timeout)
}

/// [`status_blocking`] over TLS when `tls` is given.
pub fn status_blocking_tls(
    endpoint: &str,
    tls: Option<&ServerTls>,
    timeout: Duration,
) -> anyhow::Result<StatusResponse> {
    let endpoint = endpoint.to_string();
    block_on(async move {
        let channel = dialer(&endpoint, tls, timeout)?
            .channel(&endpoint, true)
            .await?;
        Ok(MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await?
            .into_inner())
    })
}

/// One `Maintenance/HashKV` call at `revision` (0 = latest): (hash, hash revision).
pub fn hash_kv_blocking(endpoint: &str, revision: i64) -> anyhow::Result<(u32, i64)> {
    hash_kv_blocking_tls(endpoint, None, revision)
}

/// [`hash_kv_blocking`] over TLS when `tls` is given.
pub fn hash_kv_blocking_tls(
    endpoint: &str,
    tls: Option<&ServerTls>,
    revision: i64,
) -> anyhow::Result<(u32, i64)> {
    let endpoint = endpoint.to_string();
    block_on(async move {
        let channel = dialer(&endpoint, tls, Duration::from_secs(5))?
            .channel(&endpoint, true)
            .await?;
        let mut client = MaintenanceClient::new(channel);
        let r = client
            .hash_kv(cairn_proto::etcdserverpb::HashKvRequest { revision })
            .await?
            .into_inner();
        Ok((r.hash, r.hash_revision))
    })
}

/// Runs a future to completion on the harness runtime, from sync or async code alike.
///
/// The future runs on a scoped helper thread, so calling this inside a test's own tokio
/// runtime does not trip tokio's nested-runtime check.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("build harness runtime")
    });
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .expect("block_on thread panicked")
    })
}
