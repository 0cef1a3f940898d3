//! `cairnutl snapshot save FILE`: the flags, Ctrl-C, the progress bar and the last line; the
//! transfer, the SHA-256 check and the atomic rename are `cairn_client::snapshot`'s. `-`
//! streams to stdout instead.
//!
//! Differences from `etcdctl snapshot save`, all on purpose:
//! - several endpoints are fine: the first healthy one (Status answers and names a leader)
//!   is used, and stderr says which;
//! - the digest is verified (etcdctl only checks that the size leaves room for one);
//! - `--command-timeout` bounds connecting and each wait for the next message, not the whole
//!   transfer. etcdctl applies it to the whole transfer, so a large snapshot fails with
//!   "context deadline exceeded" after 5 s however healthy the stream: a sharp edge for
//!   exactly the big clusters that need backups most;
//! - on any failure, including Ctrl-C or SIGTERM, neither `FILE` nor `FILE.part` is left.
//! - a broken stdout pipe is an error (exit 1), not ripgrep's quiet exit 0: the backup is
//!   incomplete and a script must know.

use std::path::PathBuf;

use anyhow::anyhow;
use cairn_client::Dialer;
use cairn_client::snapshot::{Output, healthy_endpoint};

use super::{SaveArgs, progress_bar};
use crate::cmd::Global;

pub fn run(args: SaveArgs, g: &Global) -> anyhow::Result<()> {
    let dialer = g.dialer()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.file == "-" {
        // nothing to clean up, and a write blocked on a full pipe would keep a signal
        // handler from ever running: keep the default (exit at once)
        return rt.block_on(save(&args, dialer));
    }
    rt.block_on(async {
        tokio::select! {
            r = save(&args, dialer) => r,
            sig = cairn_client::signals::terminated() => Err(anyhow!("{sig}; nothing was written to {}", args.file)),
        }
    })
}

async fn save(args: &SaveArgs, dialer: &Dialer) -> anyhow::Result<()> {
    let client = healthy_endpoint(dialer).await?;
    if dialer.endpoints().len() > 1 {
        eprintln!("Using endpoint {}", client.endpoint());
    }
    let to_stdout = args.file == "-";
    let out = if to_stdout {
        Output::Writer {
            name: "stdout",
            out: Box::new(std::io::stdout().lock()),
        }
    } else {
        Output::File(PathBuf::from(&args.file))
    };
    let bar = progress_bar(None, "Saving snapshot");
    let timeout = dialer.config().command_timeout;
    let saved = cairn_client::snapshot::save(&client, out, timeout, &mut |size, total| {
        bar.set_length(total);
        bar.set_position(size);
    })
    .await;
    bar.finish_and_clear();
    let saved = saved?;
    if !to_stdout {
        match saved.revision {
            Some(rev) => println!(
                "Snapshot saved at {} (revision {rev}, {} bytes)",
                args.file, saved.size
            ),
            None => println!("Snapshot saved at {} ({} bytes)", args.file, saved.size),
        }
    }
    Ok(())
}
