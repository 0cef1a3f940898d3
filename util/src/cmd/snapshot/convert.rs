//! `cairnutl snapshot convert --to etcd|cairn IN OUT`: one snapshot format to the other,
//! offline. `--to etcd` gives a file etcd's tools read (`etcdctl snapshot status|restore`: the
//! way back from Cairn to etcd); `--to cairn` gives Cairn's compressed, self-checking format.
//! The input is read with every check first; the output is written to `OUT.part`, synced and
//! renamed, so a failure leaves no `OUT` behind.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_storage::snapshot::{SnapshotFile, cairn_to_etcd, etcd_to_cairn};

use super::{ConvertArgs, Target};

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let input = SnapshotFile::open(&args.input)?;
    let part = PathBuf::from(format!("{}.part", args.output.display()));
    let result = convert(&args, input, &part);
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    let what = result?;
    fs::rename(&part, &args.output).with_context(|| {
        format!(
            "cannot move {} to {}",
            part.display(),
            args.output.display()
        )
    })?;
    println!(
        "converted {} to {} ({what})",
        args.input.display(),
        args.output.display()
    );
    Ok(())
}

/// Writes the converted file to `part`; returns what it holds, for the last line.
fn convert(args: &ConvertArgs, input: SnapshotFile, part: &Path) -> anyhow::Result<String> {
    let file = File::create(part).with_context(|| format!("cannot create {}", part.display()))?;
    let mut out = BufWriter::new(file);
    let what = match (args.to, input) {
        (Target::Etcd, SnapshotFile::Cairn(info)) => {
            let bytes = cairn_to_etcd(&info, args.skip_hash_check, &mut out)?;
            format!(
                "etcd format, revision {}, {bytes} bytes",
                info.header.revision
            )
        }
        (Target::Cairn, SnapshotFile::Etcd(snap)) => {
            let plan = snap.preflight(args.skip_hash_check, &mut |_| {})?;
            let scratch = tempfile::Builder::new()
                .prefix(".cairn-convert-")
                .tempdir_in(
                    part.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
                .context("cannot make a scratch directory beside the output")?;
            let header = etcd_to_cairn(&snap, &plan, scratch.path(), &mut out)?;
            format!(
                "Cairn format, revision {}, {} keys",
                header.revision, header.key_count
            )
        }
        (Target::Etcd, SnapshotFile::Etcd(_)) => {
            bail!("{} is already an etcd snapshot file", args.input.display())
        }
        (Target::Cairn, SnapshotFile::Cairn(_)) => {
            bail!("{} is already a Cairn snapshot file", args.input.display())
        }
    };
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
        .with_context(|| format!("cannot sync {}", part.display()))?;
    Ok(what)
}
