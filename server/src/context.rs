//! What every service shares: the member, its store, the settings, and the helpers that put
//! etcd's semantics around them (response headers, request size limit, linearizable reads).

use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::Node;
use cairn_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use cairn_storage::{
    AuthError, Command, CommandResponse, Need, Op, RequestAuth, Store, StoreError,
};
use prost::Message;
use tokio::sync::watch;

use crate::authority::ClientCert;
use crate::config::Config;
use crate::errors::ApiError;
use crate::tokens::Tokens;

/// How long a proposal may take before the client gets `request timed out` (etcd: 7 s-ish).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

#[derive(Clone)]
pub struct Context {
    pub node: Arc<Node>,
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    /// Flips to true when the server begins shutting down; long-lived streams end on it.
    pub shutdown: watch::Receiver<bool>,
    pub tokens: Arc<Tokens>,
    /// Whom the proposals made through this context are for: a client request's user
    /// ([`Context::acting_for`]), checked when applied; `None`: the server itself.
    pub who: Option<RequestAuth>,
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

    /// Who makes `req`, as etcd's `AuthInfoFromCtx` decides: the user of its token (in the
    /// `token` or `authorization` metadata; an unknown or expired one is "invalid auth
    /// token"); else, under `--client-cert-auth`, the common name of the verified client
    /// certificate; else nobody (refused with "user name is empty" while auth is on).
    pub fn who<T>(&self, req: &tonic::Request<T>) -> Result<RequestAuth, ApiError> {
        let md = req.metadata();
        let token = md.get("token").or_else(|| md.get("authorization"));
        if let Some(t) = token {
            let t = t.to_str().map_err(|_| AuthError::InvalidAuthToken)?;
            return Ok(self.tokens.resolve(&self.store, t)?);
        }
        if self.config.tls.client.client_cert_auth
            && let Some(axum::extract::ConnectInfo(ClientCert(Some(cn)))) =
                req.extensions()
                    .get::<axum::extract::ConnectInfo<ClientCert>>()
        {
            return Ok(RequestAuth {
                user: cn.clone(),
                revision: self.store.auth().revision,
            });
        }
        Ok(RequestAuth::default())
    }

    /// This context, its proposals made for `req`'s user (see [`Context::who`]).
    pub fn acting_for<T>(&self, req: &tonic::Request<T>) -> Result<Context, ApiError> {
        let who = self.who(req)?;
        Ok(Context {
            who: Some(who),
            ..self.clone()
        })
    }

    /// etcd's read check (Range, watch creation) for this context's user.
    pub fn check(&self, key: &[u8], range_end: &[u8], need: Need) -> Result<(), ApiError> {
        match &self.who {
            Some(who) => Ok(self.store.auth().check(who, key, range_end, need)?),
            None => Ok(()),
        }
    }

    /// etcd's `IsAdminPermitted` for this context's user (root-only RPCs).
    pub fn check_admin(&self) -> Result<(), ApiError> {
        match &self.who {
            Some(who) => Ok(self.store.auth().check_admin(who)?),
            None => Ok(()),
        }
    }

    /// Proposes `op` (for this context's user) and returns its typed response with the
    /// header filled.
    pub async fn propose<T: Reply>(&self, op: Op) -> Result<T, ApiError> {
        let applied = self.write(Command::new(op, self.who.clone())).await?;
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
