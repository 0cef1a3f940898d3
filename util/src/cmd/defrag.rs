//! `cairnutl defrag`: online, `Maintenance.Defragment` on each endpoint (etcdctl's); offline
//! with `--data-dir`, the stopped member's `kv.redb` rewritten in place (etcdutl's).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_client::Dialer;
use cairn_proto::etcdserverpb::DefragmentRequest;

use super::online::{cluster_dialer, rpc_error};

#[derive(clap::Args)]
pub struct Args {
    /// Defragment every member of the cluster (their client URLs from MemberList).
    #[arg(long)]
    cluster: bool,
    /// Offline: defragment the data dir of a stopped member instead of asking a server.
    #[arg(long, env = "ETCD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(a: Args, g: &super::Global) -> anyhow::Result<()> {
    match &a.data_dir {
        Some(dir) => offline(dir),
        None => online(a.cluster, g),
    }
}

/// A spinner with elapsed time, on a terminal only.
fn spinner(what: String) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn offline(dir: &Path) -> anyhow::Result<()> {
    let store = cairn_storage::offline::open_store(dir)?;
    let (before, _) = store.db_size()?;
    let bar = spinner(format!("defragmenting {}", dir.display()));
    let start = Instant::now();
    let done = store.defragment();
    bar.finish_and_clear();
    done.map_err(|e| cairn_storage::offline::store_error(dir, e))?;
    let took = start.elapsed();
    // closing writes redb's allocator state, so measure the file once it is closed
    let file = store.path().to_path_buf();
    if store.close().is_err() {
        anyhow::bail!(
            "the store of {} is still in use; cannot measure it",
            dir.display()
        );
    }
    let after = cairn_storage::file_bytes(&file) as u64;
    println!(
        "Finished defragmenting etcd data[{}]. took {took:?}",
        dir.display()
    );
    println!("db size: {before} bytes → {after} bytes");
    Ok(())
}

fn online(cluster: bool, g: &super::Global) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dialer = if cluster {
            &cluster_dialer(g).await?
        } else {
            g.dialer()?
        };
        let endpoints = dialer.endpoints();
        let mut failed = 0;
        for ep in endpoints {
            let bar = spinner(format!("defragmenting {ep}"));
            let start = Instant::now();
            let res = defragment(dialer, ep).await;
            bar.finish_and_clear();
            let took = start.elapsed();
            match res {
                Ok(()) => println!("Finished defragmenting etcd member[{ep}]. took {took:?}"),
                Err(e) => {
                    eprintln!("Failed to defragment etcd member[{ep}]. took {took:?}. ({e:#})");
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            anyhow::bail!(
                "{failed} of {} members failed to defragment",
                endpoints.len()
            );
        }
        Ok(())
    })
}

async fn defragment(dialer: &Dialer, ep: &str) -> anyhow::Result<()> {
    let c = dialer.connect(ep).await?;
    c.maintenance()
        .defragment(DefragmentRequest {})
        .await
        .map_err(rpc_error)?;
    Ok(())
}
