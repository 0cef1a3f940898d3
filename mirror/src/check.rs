//! `make-mirror --check`: compares the source prefix with the destination prefix, key by
//! key, and hashes both sides the same way (CRC-32C over each key, value and, with leases,
//! whether a lease is attached), since etcd's HashKV cannot compare across clusters.
//!
//! When the destination has a checkpoint, the source is read at the checkpoint's revision and
//! the destination at the revision the checkpoint was read at: both sides then show the same
//! moment, so a running mirror checks clean however far behind it is.

use serde::Serialize;

use crate::client::Pool;
use crate::config::Config;
use crate::destination::load_checkpoint;
use crate::error::{Error, Side};
use crate::keys::{is_reserved, show};
use crate::pager::Pager;

const EXAMPLES: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub source_revision: i64,
    pub destination_revision: i64,
    /// The checkpoint's revision, when the comparison used it.
    pub checkpoint_revision: Option<i64>,
    /// Why the latest revisions were compared instead, if they were.
    pub note: Option<String>,
    pub source_keys: u64,
    pub destination_keys: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    pub source_hash: String,
    pub destination_hash: String,
    pub examples: Vec<Difference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// `missing` (at the destination), `extra` (only there), `value` or `lease`.
    pub kind: &'static str,
    /// The destination key.
    pub key: String,
}

impl CheckReport {
    pub fn is_equal(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.different == 0
    }
}

struct Hasher(u32);

impl Hasher {
    fn add(&mut self, key: &[u8], value: &[u8], lease: Option<bool>) {
        for part in [key, value] {
            self.0 = crc32c::crc32c_append(self.0, &(part.len() as u32).to_be_bytes());
            self.0 = crc32c::crc32c_append(self.0, part);
        }
        if let Some(l) = lease {
            self.0 = crc32c::crc32c_append(self.0, &[u8::from(l)]);
        }
    }
}

pub async fn check(cfg: &Config) -> Result<CheckReport, Error> {
    cfg.validate()?;
    // both pools first: a bad TLS file on either side fails before anything is dialed
    let src = Pool::new(Side::Source, cfg.source.clone())?;
    let dst = Pool::new(Side::Destination, cfg.destination.clone())?;
    let (src, dst) = (src.get().await?, dst.get().await?);
    let keys = &cfg.keys;
    let (stored, dest_rev) = load_checkpoint(&dst, &keys.state_key("checkpoint")).await?;
    let mut note = None;
    let at = match &stored {
        Some(c) if c.sync.is_none() && c.partial.is_none() => Some(c.revision),
        Some(_) => {
            note = Some(
                "a full copy or a split revision is in progress: compared the latest of both sides"
                    .to_string(),
            );
            None
        }
        None => {
            note = Some(
                "no checkpoint at the destination: compared the latest of both sides".to_string(),
            );
            None
        }
    };
    let (s_start, s_end) = keys.source_range();
    let (d_start, d_end) = keys.dest_range();
    let mut source = Pager::new(
        src.clone(),
        s_start.clone(),
        s_end.clone(),
        at.unwrap_or(0),
        false,
    );
    let mut dest = Pager::new(
        dst,
        d_start,
        d_end,
        if at.is_some() { dest_rev } else { 0 },
        false,
    );
    let mut checkpoint_revision = at;
    let mut first = match source.next().await {
        Err(Error::Compacted { .. }) if at.is_some() => {
            note = Some("the checkpoint's revision is compacted at the source: compared the latest of both sides".to_string());
            checkpoint_revision = None;
            source = Pager::new(src, s_start, s_end, 0, false);
            source.next().await?
        }
        r => r?,
    };
    let with_leases = cfg.with_leases.then_some(());
    let mut r = CheckReport {
        source_revision: 0,
        destination_revision: 0,
        checkpoint_revision,
        note,
        source_keys: 0,
        destination_keys: 0,
        missing: 0,
        extra: 0,
        different: 0,
        source_hash: String::new(),
        destination_hash: String::new(),
        examples: Vec::new(),
    };
    let (mut sh, mut dh) = (Hasher(0), Hasher(0));
    let mut s_next = loop {
        match first.take() {
            Some(kv) => match keys.to_dest(&kv.key) {
                Some(k) => break Some((k, kv)),
                None => first = source.next().await?,
            },
            None => break None,
        }
    };
    let mut d_next = next_dest(&mut dest).await?;
    let note_diff = |r: &mut CheckReport, kind: &'static str, key: &[u8]| {
        if r.examples.len() < EXAMPLES {
            r.examples.push(Difference {
                kind,
                key: show(key),
            });
        }
    };
    loop {
        let ord = match (&s_next, &d_next) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((sk, _)), Some(d)) => sk.as_slice().cmp(&d.key),
        };
        if ord != std::cmp::Ordering::Greater {
            let (k, kv) = s_next.take().expect("source side present");
            r.source_keys += 1;
            sh.add(&k, &kv.value, with_leases.map(|()| kv.lease != 0));
            if ord == std::cmp::Ordering::Less {
                r.missing += 1;
                note_diff(&mut r, "missing", &k);
            } else {
                let d = d_next.take().expect("destination side present");
                r.destination_keys += 1;
                dh.add(&d.key, &d.value, with_leases.map(|()| d.lease != 0));
                if d.value != kv.value {
                    r.different += 1;
                    note_diff(&mut r, "value", &k);
                } else if with_leases.is_some() && (d.lease != 0) != (kv.lease != 0) {
                    r.different += 1;
                    note_diff(&mut r, "lease", &k);
                }
                d_next = next_dest(&mut dest).await?;
            }
            s_next = loop {
                match source.next().await? {
                    Some(kv) => {
                        if let Some(k) = keys.to_dest(&kv.key) {
                            break Some((k, kv));
                        }
                    }
                    None => break None,
                }
            };
        } else {
            let d = d_next.take().expect("destination side present");
            r.destination_keys += 1;
            dh.add(&d.key, &d.value, with_leases.map(|()| d.lease != 0));
            r.extra += 1;
            note_diff(&mut r, "extra", &d.key);
            d_next = next_dest(&mut dest).await?;
        }
    }
    r.source_revision = source.revision;
    r.destination_revision = dest.revision;
    r.source_hash = format!("{:08x}", sh.0);
    r.destination_hash = format!("{:08x}", dh.0);
    Ok(r)
}

async fn next_dest(p: &mut Pager) -> Result<Option<cairn_proto::mvccpb::KeyValue>, Error> {
    while let Some(kv) = p.next().await? {
        if !is_reserved(&kv.key) {
            return Ok(Some(kv));
        }
    }
    Ok(None)
}
