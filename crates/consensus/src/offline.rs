//! A stopped member's identity and membership, read from its data dir for the offline tools
//! (`cairnutl status --data-dir`): IDs from `member/raft.redb`, members from the store's
//! applied raft membership (or, before the first start after a restore, the bootstrap one).

use std::collections::BTreeMap;
use std::path::Path;

use cairn_storage::Store;
use cairn_storage::offline::{OfflineError, check_file};

use crate::bootstrap::{META_BOOTSTRAP, META_CLUSTER_ID, META_MEMBER_ID};
use crate::log_store::LogStore;
use crate::state_machine::META_MEMBERSHIP;
use crate::types::{Member, StoredMembership};

/// Who a data dir belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: u64,
    pub cluster_id: u64,
    /// Voters and learners by member ID.
    pub members: BTreeMap<u64, Member>,
}

/// Reads the member's IDs and membership; `store` is the data dir's opened `kv.redb`
/// (`cairn_storage::offline::open_store`). Refuses an in-use or foreign `raft.redb`.
pub fn read_member_info(data_dir: &Path, store: &Store) -> Result<MemberInfo, OfflineError> {
    let file = data_dir.join("member").join("raft.redb");
    check_file(data_dir, &file)?;
    let bad = |message: String| {
        if message.contains("Cannot acquire lock") {
            OfflineError::InUse {
                dir: data_dir.to_path_buf(),
            }
        } else {
            OfflineError::NotCairn {
                file: file.clone(),
                message,
            }
        }
    };
    let log = LogStore::open(&file).map_err(bad)?;
    let (Some(member_id), Some(cluster_id)) = (
        log.read_meta::<u64>(META_MEMBER_ID).map_err(bad)?,
        log.read_meta::<u64>(META_CLUSTER_ID).map_err(bad)?,
    ) else {
        return Err(bad("no member or cluster ID recorded".into()));
    };
    let applied = store
        .meta(META_MEMBERSHIP)
        .map_err(|e| cairn_storage::offline::store_error(data_dir, e))?;
    let members = match applied {
        Some(raw) => {
            let m: StoredMembership =
                serde_json::from_slice(&raw).map_err(|e| OfflineError::NotCairn {
                    file: cairn_storage::offline::kv_path(data_dir),
                    message: format!("raft membership: {e}"),
                })?;
            m.membership()
                .nodes()
                .map(|(id, n)| (*id, n.clone()))
                .collect()
        }
        None => log
            .read_meta::<BTreeMap<u64, Member>>(META_BOOTSTRAP)
            .map_err(bad)?
            .unwrap_or_default(),
    };
    Ok(MemberInfo {
        member_id,
        cluster_id,
        members,
    })
}
