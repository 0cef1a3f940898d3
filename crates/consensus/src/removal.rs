//! Which members were removed from the cluster, and whether this member is one of them.
//!
//! The state machine records every member a membership change removed (etcd's removed
//! list); the peer service refuses messages from them, and a member that learns it was
//! removed (from its own log, or from a peer refusing it) stops for good.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

#[derive(Clone)]
pub struct Removal {
    inner: Arc<Inner>,
}

struct Inner {
    me: u64,
    removed: RwLock<BTreeSet<u64>>,
    flag: watch::Sender<bool>,
}

impl Removal {
    pub fn new(me: u64) -> Self {
        Removal {
            inner: Arc::new(Inner {
                me,
                removed: RwLock::new(BTreeSet::new()),
                flag: watch::Sender::new(false),
            }),
        }
    }

    /// The removed members as the state machine knows them.
    pub fn set(&self, ids: BTreeSet<u64>) {
        let me_removed = ids.contains(&self.inner.me);
        *self
            .inner
            .removed
            .write()
            .unwrap_or_else(|p| p.into_inner()) = ids;
        if me_removed {
            self.inner.flag.send_replace(true);
        }
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.inner
            .removed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&id)
    }

    /// A peer refused this member as removed.
    pub fn removed_by_peer(&self) {
        self.inner.flag.send_replace(true);
    }

    pub fn me_removed(&self) -> bool {
        *self.inner.flag.borrow()
    }

    /// Completes when this member learns it was removed.
    pub async fn wait(&self) {
        let mut rx = self.inner.flag.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }
}
