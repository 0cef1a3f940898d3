//! The checkpoint: the last source revision whose changes are at the destination, stored at
//! the destination in the same txn as those changes, so it can be neither ahead of nor
//! behind the data. It also records the source's identity (a restarted mirror pointed at
//! another cluster or prefix is refused) and, during a full copy, how far the copy got.
//!
//! Stored as JSON under `__cairn_mirror__/<hex dest prefix>/checkpoint`; keys in hex.

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// The source cluster ID, in hex (as `etcdctl endpoint status` prints member IDs).
    pub source_cluster: String,
    /// The source prefix, in hex.
    pub source_prefix: String,
    /// Without `sync`: every source revision up to this one is mirrored. With `sync`: the
    /// revision the full copy reads at.
    pub revision: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncState>,
    /// Set while a source revision too large for one destination txn is half applied:
    /// the first `applied` of its events are at the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    /// The mirror that wrote it, and when (Unix milliseconds).
    pub writer: String,
    pub time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// Every source key below this one (hex) is copied; absent: nothing yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_below: Option<String>,
    /// The copy is complete; the prune (if any) is what is left.
    #[serde(default)]
    pub copy_done: bool,
    /// Delete destination keys the source lacks once the copy is done.
    pub prune: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    pub revision: i64,
    pub applied: usize,
}

/// Where the mirror stands, as a checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// A full copy at `revision`, from `after` (a source key) on.
    Sync {
        revision: i64,
        copied_below: Option<Vec<u8>>,
        copy_done: bool,
        prune: bool,
    },
    /// Watch from `revision + 1`, skipping the first `skip` events of `revision + 1`.
    Watch { revision: i64, skip: usize },
}

impl Checkpoint {
    pub fn resume(&self) -> Result<Resume, String> {
        if let Some(s) = &self.sync {
            let copied_below = match &s.copied_below {
                Some(h) => Some(hex::decode(h).map_err(|e| format!("copied_below: {e}"))?),
                None => None,
            };
            return Ok(Resume::Sync {
                revision: self.revision,
                copied_below,
                copy_done: s.copy_done,
                prune: s.prune,
            });
        }
        let skip = match self.partial {
            Some(p) if p.revision == self.revision + 1 => p.applied,
            Some(p) => {
                return Err(format!(
                    "partial revision {} does not follow revision {}",
                    p.revision, self.revision
                ));
            }
            None => 0,
        };
        Ok(Resume::Watch {
            revision: self.revision,
            skip,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a checkpoint always serializes")
    }

    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::BadCheckpoint {
            key: crate::keys::show(key),
            reason,
        };
        let c: Checkpoint = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not a make-mirror checkpoint ({e}); delete the key to start over"
            ))
        })?;
        if c.format != FORMAT {
            return Err(bad(format!(
                "format {} is not {FORMAT}; use a cairnutl that writes it",
                c.format
            )));
        }
        Ok(c)
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Checkpoint {
        Checkpoint {
            format: FORMAT,
            source_cluster: "abc".into(),
            source_prefix: hex::encode("/a/"),
            revision: 41,
            sync: None,
            partial: None,
            writer: "m1".into(),
            time_ms: 1,
        }
    }

    #[test]
    fn round_trip_and_resume() {
        let mut c = base();
        c.partial = Some(Partial {
            revision: 42,
            applied: 127,
        });
        let back = Checkpoint::decode(b"k", &c.encode()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            back.resume().unwrap(),
            Resume::Watch {
                revision: 41,
                skip: 127
            }
        );
        c.partial = Some(Partial {
            revision: 50,
            applied: 1,
        });
        assert!(c.resume().is_err());
    }

    #[test]
    fn sync_state() {
        let mut c = base();
        c.sync = Some(SyncState {
            copied_below: Some(hex::encode("/a/k9")),
            copy_done: false,
            prune: true,
        });
        assert_eq!(
            c.resume().unwrap(),
            Resume::Sync {
                revision: 41,
                copied_below: Some(b"/a/k9".to_vec()),
                copy_done: false,
                prune: true
            }
        );
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = Checkpoint::decode(b"ck", b"{}").unwrap_err().to_string();
        assert!(e.contains("not a make-mirror checkpoint"), "{e}");
        let mut c = base();
        c.format = 9;
        let e = Checkpoint::decode(b"ck", &c.encode())
            .unwrap_err()
            .to_string();
        assert!(e.contains("format 9"), "{e}");
    }
}
