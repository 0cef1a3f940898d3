//! What every service shares: the member, its store, the settings, and the helpers that put
//! etcd's semantics around them (response headers, request size limit, linearizable reads).

use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::Node;
use cairn_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use cairn_storage::{Command, CommandResponse, Op, Store, StoreError};
use prost::Message;
use tokio::sync::watch;

use crate::config::Config;
use crate::errors::ApiError;

/// How long a proposal may take before the client gets `request timed out` (etcd: 7 s-ish).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

#[derive(Clone)]
pub struct Context {
    pub node: Arc<Node>,
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    /// Flips to true when the server begins shutting down; long-lived streams end on it.
    pub shutdown: watch::Receiver<bool>,
}

impl Context {
    /// etcd's response header: cluster and member IDs, the store revision, the raft term.
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.node.cluster_id,
            member_id: self.node.member_id,
            revision,
            raft_term: self.node.term(),
        })
    }

    /// Fills the member-level fields of a header the store produced.
    pub fn fill(&self, h: &mut Option<ResponseHeader>) {
        let revision = match h {
            Some(h) if h.revision != 0 => h.revision,
            _ => self.store.current_revision(),
        };
        *h = self.header(revision);
    }

    /// Proposes a command through raft and waits for its result here.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, ApiError> {
        if cmd.encoded_len() > self.config.max_request_bytes {
            return Err(ApiError::RequestTooLarge);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, self.node.write(cmd)).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(_) => Err(ApiError::Timeout),
        }
    }

    /// Proposes `op` and returns its typed response with the header filled.
    pub async fn propose<T: Reply>(&self, op: Op) -> Result<T, ApiError> {
        let applied = self.write(op.into()).await?;
        let mut reply = T::from_applied(applied)
            .map_err(|other| ApiError::Stopped(format!("unexpected apply result {other:?}")))?;
        self.fill(reply.header());
        Ok(reply)
    }

    /// Runs a read on a blocking thread, after a read-index round unless `serializable`.
    pub async fn read<T: Send + 'static>(
        &self,
        serializable: bool,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        if !serializable {
            match tokio::time::timeout(REQUEST_TIMEOUT, self.node.linearizable()).await {
                Ok(r) => r.map_err(ApiError::from)?,
                Err(_) => return Err(ApiError::Timeout),
            }
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::Stopped(e.to_string()))?
            .map_err(ApiError::from)
    }
}

/// A response type a proposal can produce.
pub trait Reply: Sized {
    fn from_applied(r: CommandResponse) -> Result<Self, CommandResponse>;
    fn header(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! replies {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl Reply for $ty {
            fn from_applied(r: CommandResponse) -> Result<Self, CommandResponse> {
                match r {
                    CommandResponse::$variant(x) => Ok(x),
                    other => Err(other),
                }
            }
            fn header(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        }
    )*};
}

replies!(
    PutResponse => Put,
    DeleteRangeResponse => DeleteRange,
    TxnResponse => Txn,
    CompactionResponse => Compact,
    LeaseGrantResponse => LeaseGrant,
    LeaseRevokeResponse => LeaseRevoke,
    AlarmResponse => Alarm,
);
