//! Starting and stopping a member: bind, start raft, serve gRPC + HTTP on every client URL,
//! then drain on shutdown.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cairn_consensus::{Node, NodeConfig};
use cairn_storage::StoreOptions;
use tokio::sync::watch;

use crate::authority::AuthorityListener;
use crate::config::Config;
use crate::context::Context;
use crate::listen;

/// How long startup waits for this member's attributes to be published before serving.
const PUBLISH_WAIT: Duration = Duration::from_secs(3);

/// How long open connections (watch streams, keep-alives) get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the member until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let client_tcp = listen::bind(&config.listen_client, "clients").await?;
    let metrics_tcp = listen::bind(&config.listen_metrics, "metrics").await?;
    let peer_tcp = listen::bind(&config.listen_peer, "peers").await?;
    let tls = prepare_tls(&config)?;
    let tokens = Arc::new(crate::tokens::Tokens::new(&config.auth_token)?);

    let min_lease_ttl = ((config.election_timeout.as_millis() * 3 / 2).div_ceil(1000)) as i64;
    let node = Node::start(NodeConfig {
        data_dir: config.data_dir.clone(),
        name: config.name.clone(),
        initial_cluster: config.initial_cluster.clone(),
        join_existing: config.join_existing,
        initial_cluster_token: config.initial_cluster_token.clone(),
        initial_advertise_peer_urls: config.peer_urls.clone(),
        heartbeat_interval: config.heartbeat_interval,
        election_timeout: config.election_timeout,
        snapshot_count: config.snapshot_count,
        snapshot_catchup_entries: config.snapshot_catchup_entries,
        store: StoreOptions {
            min_lease_ttl: min_lease_ttl.max(1),
            token_ttl: config.auth_token_ttl,
            compaction: config.compaction,
        },
        peer_connector: tls.peer_connector.clone(),
        force_new_cluster: config.force_new_cluster,
    })
    .await
    .with_context(|| {
        format!(
            "cannot start member {:?} with data dir {}",
            config.name,
            config.data_dir.display()
        )
    })?;
    let node = Arc::new(node);
    tracing::info!(
        member_id = %format!("{:x}", node.member_id),
        cluster_id = %format!("{:x}", node.cluster_id),
        data_dir = %config.data_dir.display(),
        "member started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for (tcp, https) in peer_tcp {
        let l = listen::accept(tcp, https, &tls.peer, "peer")?;
        let addr = l.local_addr();
        let mut stop = stop_rx.clone();
        let routes = tonic::service::Routes::new(cairn_consensus::transport::service::peer_server(
            node.clone(),
        ));
        servers.push(tokio::spawn(async move {
            let serve = axum::serve(listen::Plain(l), routes.into_axum_router())
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            if let Err(e) = serve.await {
                tracing::error!(%addr, error = %e, "peer listener failed");
            }
        }));
        tracing::info!(%addr, tls = https, "serving peer traffic");
    }
    let ctx = Context {
        store: node.store.clone(),
        node: node.clone(),
        config: Arc::new(config),
        shutdown: stop_rx.clone(),
        tokens,
        who: None,
    };
    tokio::spawn(crate::background::expire_leases(ctx.clone()));
    tokio::spawn(crate::background::auto_compact(
        ctx.clone(),
        ctx.config.auto_compaction,
    ));

    // like etcd, publish this member's attributes before serving clients (bounded: without a
    // quorum, clients are served anyway and publishing goes on in the background)
    if !node.wait_any_leader(ctx.config.election_timeout * 5).await {
        tracing::warn!(
            "no leader yet; requests fail with 'etcdserver: no leader' until one is elected"
        );
    }
    let first_publish = tokio::time::timeout(PUBLISH_WAIT, publish(ctx.clone())).await;
    if first_publish.is_err() {
        tokio::spawn(publish(ctx.clone()));
    }
    if ctx.config.initial_corrupt_check {
        crate::corruption::initial_check(&ctx).await?;
    }
    if let Some(every) = ctx.config.corrupt_check_every {
        tokio::spawn(crate::corruption::periodic(ctx.clone(), every));
    }

    let mut client_router = crate::grpc::router(&ctx).merge(crate::http::router(ctx.clone()));
    if ctx.config.enable_grpc_gateway {
        client_router = client_router.merge(crate::gateway::router(&ctx));
    }
    let metrics_router = crate::http::router(ctx.clone());
    let client = client_tcp.into_iter().map(|l| (l, true));
    let metrics = metrics_tcp.into_iter().map(|l| (l, false));
    for ((tcp, https), is_client) in client.chain(metrics) {
        let mut stop = stop_rx.clone();
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let (addr, serve): (_, Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>) =
            if is_client {
                let l = listen::accept(tcp, https, &tls.client, "client")?;
                let addr = l.local_addr();
                // accepts the URL etcdctl 3.4 --cluster sends as :authority (see authority.rs)
                // the client certificate's CN reaches the services as ConnectInfo (CN users)
                let app = client_router
                    .clone()
                    .into_make_service_with_connect_info::<crate::authority::ClientCert>();
                let serve = axum::serve(AuthorityListener::new(l), app);
                (
                    addr,
                    Box::pin(serve.with_graceful_shutdown(shutdown).into_future()),
                )
            } else {
                let l = listen::accept(tcp, https, &tls.metrics, "metrics")?;
                let addr = l.local_addr();
                let serve = axum::serve(listen::Plain(l), metrics_router.clone());
                (
                    addr,
                    Box::pin(serve.with_graceful_shutdown(shutdown).into_future()),
                )
            };
        servers.push(tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(%addr, error = %e, "listener failed");
            }
        }));
        let what = if is_client { "client" } else { "metrics" };
        tracing::info!(%addr, tls = https, "serving {what} traffic");
    }
    tracing::info!("ready to serve client requests");

    let end = tokio::select! {
        _ = shutdown => End::Signal,
        _ = node.removed() => End::Removed,
        reason = node.failed() => {
            tracing::error!(%reason, "raft stopped on an error; this member exits");
            End::Failed(reason)
        }
    };
    tracing::info!("shutting down: draining connections");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, futures::future::join_all(servers)).await;
    if drained.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    drop(ctx);
    match Arc::try_unwrap(node) {
        Ok(node) => node.close(true).await,
        Err(node) => {
            // a stream task still holds the member: stop raft and flush; exit releases the rest
            if let Err(e) = node.raft.shutdown().await {
                tracing::warn!(error = %e, "raft shutdown");
            }
            if let Err(e) = node.store.flush() {
                tracing::error!(error = %e, "final flush failed; the raft log will be replayed at start");
            }
        }
    }
    tracing::info!("stopped");
    match end {
        End::Signal => Ok(()),
        End::Removed => anyhow::bail!(
            "the member has been permanently removed from the cluster; its data dir cannot be \
             used again (delete it, `member add` it anew and start with --initial-cluster-state existing)"
        ),
        End::Failed(reason) => anyhow::bail!(
            "raft stopped on an error: {reason}; fix its cause (a full or failing disk, say) and \
             restart the member: it catches up from its log or from the leader"
        ),
    }
}

/// Why the server stops.
enum End {
    /// The shutdown signal.
    Signal,
    /// This member was removed from the cluster.
    Removed,
    /// Raft stopped on an error.
    Failed(String),
}

/// Records this member's name and client URLs in the membership once a leader exists
/// (etcd's publish), retrying until it is done or the server stops.
async fn publish(ctx: Context) {
    let mut stop = ctx.shutdown.clone();
    loop {
        match ctx
            .node
            .publish(&ctx.config.name, &ctx.config.advertise_client_urls)
            .await
        {
            Ok(()) => {
                tracing::info!(name = %ctx.config.name, "published member attributes");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "could not publish member attributes yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Reads the TLS files (and makes `--auto-tls` certificates) for the listeners and peers.
fn prepare_tls(config: &Config) -> anyhow::Result<crate::tls::Prepared> {
    let https = |l: &[crate::config::Listen]| l.iter().any(|l| l.tls);
    let listen_urls =
        |l: &[crate::config::Listen]| l.iter().map(|l| l.url.clone()).collect::<Vec<_>>();
    let mut client_urls = listen_urls(&config.listen_client);
    client_urls.extend(listen_urls(&config.listen_metrics));
    client_urls.extend(config.advertise_client_urls.iter().cloned());
    let mut peer_urls = listen_urls(&config.listen_peer);
    peer_urls.extend(config.peer_urls.iter().cloned());
    let dials_https_peers = config
        .initial_cluster
        .iter()
        .flat_map(|(_, urls)| urls)
        .chain(&config.peer_urls)
        .any(|u| u.starts_with("https://"));
    let needs = crate::tls::Needs {
        client: https(&config.listen_client),
        metrics: https(&config.listen_metrics),
        peer: https(&config.listen_peer),
        dials_https_peers,
        client_hosts: &crate::config::hosts(&client_urls),
        peer_hosts: &crate::config::hosts(&peer_urls),
    };
    crate::tls::prepare(&config.tls, &config.data_dir, &needs)
}
