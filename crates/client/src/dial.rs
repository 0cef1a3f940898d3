//! Opening connections to a cluster's endpoints: the [`Dialer`] holds the checked config and
//! the TLS connector (built once), and hands out [`Client`]s.
//!
//! Every connection goes through `cairn_tls::Connector` (TCP, then TLS for `https://`),
//! [`crate::sniff`] (a connection the server refuses after connecting says why) and `cairn_proto::coalesce`
//! (requests that become ready together leave in one write, as grpc-go's writer sends them).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cairn_proto::coalesce::Coalesce;
use cairn_proto::etcdserverpb::AuthenticateRequest;
use cairn_proto::etcdserverpb::auth_client::AuthClient;
use cairn_tls::{ClientStream, Connector};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::ClientConfig;
use crate::error::{ClientError, error_chain, with_hint};
use crate::security::target;
use crate::session::Client;
use crate::sniff::{Explain, FirstAnswer, Verdict};

#[derive(Clone)]
pub struct Dialer {
    config: Arc<ClientConfig>,
    connector: Connector,
}

impl Dialer {
    /// Checks the endpoints and reads the TLS files now, so a bad flag fails before any
    /// network traffic, naming the file or endpoint.
    pub fn new(config: ClientConfig) -> Result<Dialer, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Config(
                "no endpoints given; pass --endpoints".into(),
            ));
        }
        let connector = config.tls.connector(&config.endpoints)?;
        Ok(Dialer {
            config: Arc::new(config),
            connector,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn endpoints(&self) -> &[String] {
        &self.config.endpoints
    }

    /// The same cluster with other endpoints (e.g. every member's client URL, for
    /// `--cluster`); the TLS settings are shared.
    pub fn with_endpoints(&self, endpoints: Vec<String>) -> Result<Dialer, ClientError> {
        let mut config = (*self.config).clone();
        config.endpoints = endpoints;
        let connector = if self.connector.has_tls() {
            self.connector.clone()
        } else {
            config.tls.connector(&config.endpoints)?
        };
        Ok(Dialer {
            config: Arc::new(config),
            connector,
        })
    }

    /// The tonic endpoint for `ep` with the dial timeout and keepalive.
    pub fn endpoint(&self, ep: &str) -> Result<Endpoint, ClientError> {
        let uri = target(ep, self.config.tls.tls_by_default())?;
        let mut e = Endpoint::from_shared(uri)
            .map_err(|e| ClientError::Config(format!("bad endpoint {ep:?}: {e}")))?
            .connect_timeout(self.config.dial_timeout);
        if let Some((interval, timeout)) = self.config.keepalive {
            e = e
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        Ok(e)
    }

    /// A channel to `ep`; `per_call_timeout` bounds every call on it by the command
    /// timeout (leave it off for watches and keep-alive streams).
    pub async fn channel(&self, ep: &str, per_call_timeout: bool) -> Result<Channel, ClientError> {
        Ok(self.explained(ep, per_call_timeout).await?.inner().clone())
    }

    /// [`Dialer::channel`], its failed calls explained by its connections' [`Verdict`].
    async fn explained(
        &self,
        ep: &str,
        per_call_timeout: bool,
    ) -> Result<Explain<Channel>, ClientError> {
        let mut e = self.endpoint(ep)?;
        if per_call_timeout {
            e = e.timeout(self.config.command_timeout);
        }
        let verdict = Verdict::default();
        let dial = Dial {
            connector: self.connector.clone(),
            verdict: verdict.clone(),
        };
        let channel = e
            .connect_with_connector(dial)
            .await
            .map_err(|err| ClientError::Connect {
                endpoint: ep.to_string(),
                reason: with_hint(error_chain(&err)),
            })?;
        Ok(Explain::new(channel, verdict))
    }

    /// A client of `ep` for unary calls (each bounded by the command timeout),
    /// authenticated when the config has a user.
    pub async fn connect(&self, ep: &str) -> Result<Client, ClientError> {
        let channel = self.explained(ep, true).await?;
        self.session(ep, channel).await
    }

    /// Like [`Dialer::connect`], without a deadline on each call: for streams. Unary calls
    /// made through [`Client::request`] still get one.
    pub async fn connect_streaming(&self, ep: &str) -> Result<Client, ClientError> {
        let channel = self.explained(ep, false).await?;
        self.session(ep, channel).await
    }

    /// The first endpoint, in order, that connects.
    pub async fn connect_any(&self) -> Result<Client, ClientError> {
        self.first_that_connects(false).await
    }

    /// Like [`Dialer::connect_any`], without a deadline on each call: for a stream (a watch).
    pub async fn connect_any_streaming(&self) -> Result<Client, ClientError> {
        self.first_that_connects(true).await
    }

    async fn first_that_connects(&self, streaming: bool) -> Result<Client, ClientError> {
        let mut why = Vec::new();
        for ep in self.endpoints() {
            let client = if streaming {
                self.connect_streaming(ep).await
            } else {
                self.connect(ep).await
            };
            match client {
                Ok(c) => return Ok(c),
                Err(e @ (ClientError::Config(_) | ClientError::Tls(_))) => return Err(e),
                Err(e) if refused_credentials(&e) => return Err(e),
                Err(e) => why.push(e.to_string()),
            }
        }
        Err(ClientError::NoEndpoint(why.join("; ")))
    }

    async fn session(&self, ep: &str, channel: Explain<Channel>) -> Result<Client, ClientError> {
        let mut client = Client::new(ep, channel, &self.config);
        // As clientv3: a user without a name or a password is not authenticated (its calls
        // go without a token), nor is anyone on a cluster whose auth is off.
        let Some((name, password)) = &self.config.user else {
            return Ok(client);
        };
        if name.is_empty() || password.is_empty() {
            return Ok(client);
        }
        let req = AuthenticateRequest {
            name: name.clone(),
            password: password.clone(),
        };
        match AuthClient::new(client.channel())
            .authenticate(client.request(req))
            .await
        {
            Ok(r) => client.set_token(&r.into_inner().token)?,
            Err(s) if s.message() == AUTH_NOT_ENABLED => {}
            Err(s) => return Err(ClientError::rpc(ep, s)),
        }
        Ok(client)
    }
}

/// etcd's answer to Authenticate while auth is off (`rpctypes.ErrAuthNotEnabled`).
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// The server refused the credentials (wrong password, unknown user: InvalidArgument).
/// Every member shares the auth store, so the next endpoint would say the same.
fn refused_credentials(e: &ClientError) -> bool {
    e.status()
        .is_some_and(|s| s.code() == tonic::Code::InvalidArgument)
}

/// tonic's connector: TCP (and TLS) through `cairn_tls`, each connection's first answer
/// checked, writes coalesced.
#[derive(Clone)]
pub struct Dial {
    pub connector: Connector,
    /// Where a connection's refusal is left for the channel's calls.
    pub verdict: Verdict,
}

impl tower_service::Service<Uri> for Dial {
    type Response = TokioIo<Coalesce<FirstAnswer<ClientStream>>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (connector, verdict) = (self.connector.clone(), self.verdict.clone());
        Box::pin(async move {
            let stream = connector.connect(&uri).await?;
            let plain = matches!(stream, ClientStream::Plain(_));
            Ok(TokioIo::new(Coalesce::new(FirstAnswer::new(
                stream, plain, verdict,
            ))))
        })
    }
}
