//! One connection to one endpoint, with the generated clients of every etcd service. Each
//! call is stamped with the auth token (when the config has a user) and `hasleader` (when it
//! asks for it); answers are accepted up to etcdctl's size limit (2 GiB).

use cairn_proto::etcdserverpb::auth_client::AuthClient;
use cairn_proto::etcdserverpb::cluster_client::ClusterClient;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::lease_client::LeaseClient;
use cairn_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_proto::etcdserverpb::watch_client::WatchClient;
use cairn_proto::v3electionpb::election_client::ElectionClient;
use cairn_proto::v3lockpb::lock_client::LockClient;
use std::time::Duration;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::sniff::Explain;

/// What the generated clients run over: the channel, whose failed calls say why a plain
/// connection was refused ([`crate::sniff`]), and the stamp.
pub type Svc = InterceptedService<Explain<Channel>, Stamp>;

/// Largest answer accepted (etcdctl's `MaxCallRecvMsgSize`).
const MAX_RECV: usize = i32::MAX as usize;

/// Adds the token and `hasleader` to every call.
#[derive(Clone, Default)]
pub struct Stamp {
    token: Option<AsciiMetadataValue>,
    require_leader: bool,
}

impl Interceptor for Stamp {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.token {
            req.metadata_mut().insert("token", t.clone());
        }
        if self.require_leader {
            req.metadata_mut()
                .insert("hasleader", MetadataValue::from_static("true"));
        }
        Ok(req)
    }
}

#[derive(Clone)]
pub struct Client {
    endpoint: String,
    channel: Explain<Channel>,
    stamp: Stamp,
    timeout: Duration,
}

macro_rules! service {
    ($name:ident, $client:ident) => {
        pub fn $name(&self) -> $client<Svc> {
            $client::with_interceptor(self.channel.clone(), self.stamp.clone())
                .max_decoding_message_size(MAX_RECV)
                .max_encoding_message_size(MAX_RECV)
        }
    };
}

impl Client {
    pub(crate) fn new(endpoint: &str, channel: Explain<Channel>, config: &ClientConfig) -> Client {
        Client {
            endpoint: endpoint.to_string(),
            channel,
            stamp: Stamp {
                token: None,
                require_leader: config.require_leader,
            },
            timeout: config.command_timeout,
        }
    }

    pub(crate) fn set_token(&mut self, token: &str) -> Result<(), ClientError> {
        let v = token.parse().map_err(|_| {
            ClientError::Config(format!(
                "{}: the server's auth token is not valid ASCII",
                self.endpoint
            ))
        })?;
        self.stamp.token = Some(v);
        Ok(())
    }

    /// The endpoint as it was given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The raw channel (no token, no `hasleader`).
    pub fn channel(&self) -> Channel {
        self.channel.inner().clone()
    }

    /// `msg` with the command timeout as its deadline: for unary calls on a streaming
    /// connection.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// A failed call's error, naming this endpoint.
    pub fn err(&self, status: tonic::Status) -> ClientError {
        ClientError::rpc(&self.endpoint, status)
    }

    service!(kv, KvClient);
    service!(watch, WatchClient);
    service!(lease, LeaseClient);
    service!(cluster, ClusterClient);
    service!(maintenance, MaintenanceClient);
    service!(auth, AuthClient);
    service!(lock, LockClient);
    service!(election, ElectionClient);
}
