//! One `backup run` per target: two runs writing the same backup would each seal segments
//! the other also writes, and each one's retention would remove the other's files.
//!
//! - A directory (the target, or an object-store target's spool) is locked with an advisory
//!   lock on its `lock` file, held for the life of the process, so a killed run leaves no
//!   stale lock behind. The file names the holder for the refusal.
//! - An object-store prefix has no such lock: its `lock` object is a lease. It names the
//!   holder, a random token and an expiry ([`LEASE`] ahead); the run renews it every
//!   [`RENEW`] with a conditional write on the version it last wrote. A run finds the lock
//!   held (not expired) and stops; an expired lock is taken over with a conditional write
//!   too, so of two runs racing only one wins. So is a lock left by a run that died on this
//!   host with this spool: this run holds the spool's file lock, so that run is gone (a
//!   restart after a crash need not wait for the lease to run out). A run whose renewal finds another's version
//!   (it could not reach the store for longer than the lease, and another run took over) is
//!   fenced: it stops uploading and exits, leaving what it had not uploaded in its spool.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use thiserror::Error;

use crate::target::{Target, TargetError, io_at};

/// The name of the lock file or object in a target.
pub const LOCK_NAME: &str = "lock";
/// How long an object-store lock holds without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often it is renewed.
pub const RENEW: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum LockError {
    #[error(
        "{at} is held by another backup run ({holder}): two runs must not write the same backup; stop the other one{expiry}"
    )]
    Held {
        at: String,
        holder: String,
        expiry: String,
    },
    #[error(
        "another backup run took over {at} ({holder}) while this one could not renew its lock: this run stops; what it had not uploaded stays in its spool"
    )]
    Fenced { at: String, holder: String },
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// The lock of a directory: released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Locks `dir` (created if missing) for this process.
pub fn lock_dir(dir: &Path) -> Result<DirLock, LockError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let path = dir.join(LOCK_NAME);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Held {
                at: path.display().to_string(),
                holder: holder.trim().to_string(),
                expiry: String::new(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_at(&path)(e).into()),
    }
    file.set_len(0).map_err(io_at(&path))?;
    file.rewind().map_err(io_at(&path))?;
    writeln!(file, "{}", holder()).map_err(io_at(&path))?;
    Ok(DirLock { _file: file })
}

/// Who this run is, for the other run's refusal.
fn holder() -> String {
    format!("pid {} on {}", std::process::id(), host())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".into())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseBody {
    holder: String,
    /// The run's spool (absolute) and host: a run with the same ones holds the spool's file
    /// lock, so the holder is dead.
    #[serde(default)]
    spool: String,
    #[serde(default)]
    host: String,
    token: String,
    expires_unix_ms: i64,
}

/// The lock object as it is now, if it can be read.
async fn read_lease(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    location: &object_store::path::Path,
) -> Option<LeaseBody> {
    let bytes = store.get(location).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The lease on an object-store target's `lock` object.
#[derive(Debug)]
pub struct StoreLock {
    holder: String,
    spool: String,
    token: String,
    version: UpdateVersion,
    renewed: Instant,
}

impl StoreLock {
    /// Takes the lock of `target` (an object store), or says who holds it. `spool` is the
    /// run's spool, whose [`DirLock`] this run holds.
    pub async fn acquire(target: &Target, spool: &Path) -> Result<StoreLock, LockError> {
        let (store, location, at) = target.object(LOCK_NAME).expect("an object-store target");
        let holder = holder();
        let spool = std::path::absolute(spool)
            .unwrap_or_else(|_| spool.to_path_buf())
            .display()
            .to_string();
        let token = format!("{:032x}", rand::random::<u128>());
        let mode = match store.get(&location).await {
            Ok(got) => {
                let meta = got.meta.clone();
                let bytes = got.bytes().await.map_err(|source| TargetError::Store {
                    what: format!("reading {at}"),
                    source,
                })?;
                if let Ok(body) = serde_json::from_slice::<LeaseBody>(&bytes) {
                    let left = body.expires_unix_ms - now_ms();
                    let dead = body.host == host() && body.spool == spool;
                    if left > 0 && !dead {
                        return Err(LockError::Held {
                            at,
                            holder: body.holder,
                            expiry: format!(
                                " (or, if it is gone, wait {}s for its lock to expire)",
                                left / 1000 + 1
                            ),
                        });
                    }
                }
                // expired (or not ours to read): taken over, if nobody else wrote it since
                PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                })
            }
            Err(object_store::Error::NotFound { .. }) => PutMode::Create,
            Err(source) => {
                return Err(TargetError::Store {
                    what: format!("reading {at}"),
                    source,
                }
                .into());
            }
        };
        let mut lock = StoreLock {
            holder,
            spool,
            token,
            version: UpdateVersion {
                e_tag: None,
                version: None,
            },
            renewed: Instant::now(),
        };
        lock.write(target, mode).await?;
        Ok(lock)
    }

    /// Whether a renewal is due.
    pub fn due(&self) -> bool {
        self.renewed.elapsed() >= RENEW
    }

    /// Whether the lease is still certainly this run's (renewed within the lease): uploads
    /// wait for a renewal otherwise.
    pub fn held(&self) -> bool {
        self.renewed.elapsed() < LEASE - RENEW
    }

    /// Extends the lease; [`LockError::Fenced`] when another run took the lock over.
    pub async fn renew(&mut self, target: &Target) -> Result<(), LockError> {
        let mode = PutMode::Update(self.version.clone());
        self.write(target, mode).await
    }

    async fn write(&mut self, target: &Target, mode: PutMode) -> Result<(), LockError> {
        let (store, location, at) = target.object(LOCK_NAME).expect("an object-store target");
        let started = Instant::now();
        let body = serde_json::to_vec(&LeaseBody {
            holder: self.holder.clone(),
            spool: self.spool.clone(),
            host: host(),
            token: self.token.clone(),
            expires_unix_ms: now_ms() + LEASE.as_millis() as i64,
        })
        .expect("serializable");
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match store
            .put_opts(&location, PutPayload::from(body), opts)
            .await
        {
            Ok(r) => {
                self.version = UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                };
                self.renewed = started;
                Ok(())
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                let holder = read_lease(store, &location)
                    .await
                    .map_or_else(|| "unknown".into(), |b| b.holder);
                if self.version.e_tag.is_none() {
                    Err(LockError::Held {
                        at,
                        holder,
                        expiry: String::new(),
                    })
                } else {
                    Err(LockError::Fenced { at, holder })
                }
            }
            Err(source) => Err(TargetError::Store {
                what: format!("writing {at}"),
                source,
            }
            .into()),
        }
    }

    /// Gives the lock up (at a clean stop), if it is still this run's.
    pub async fn release(self, target: &Target) {
        let (store, location, _) = target.object(LOCK_NAME).expect("an object-store target");
        let ours = read_lease(store, &location)
            .await
            .is_some_and(|b| b.token == self.token);
        if ours {
            let _ = store.delete(&location).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_refuses_a_second_run_and_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_dir(dir.path()).unwrap();
        let e = lock_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("held by another backup run")
                && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(first);
        lock_dir(dir.path()).unwrap();
    }
}
