//! What the store keeps in memory beside its file, under the state lock: the index, the
//! revision bounds, applied writes not in the file yet, the alarms, a compaction under way
//! and the auth view.

use std::sync::Arc;

use cairn_proto::etcdserverpb::AlarmType;

use crate::auth::AuthView;
use crate::backend::AlarmScan;
use crate::compact::Compaction;
use crate::error::Result;
use crate::index::TreeIndex;
use crate::overlay::Overlay;
use crate::schema::alarm_from_key;

pub(crate) struct State {
    pub index: TreeIndex,
    pub current_rev: i64,
    pub compact_rev: i64,
    /// Bytes of the key table's rows (revision keys plus encoded KeyValues): what the
    /// revisions kept take, counted as they are written and compacted away.
    pub data_bytes: i64,
    /// Applied writes the file does not hold yet.
    pub overlay: Overlay,
    /// The alarms raised, as the alarm table says.
    pub raised: Raised,
    /// A compaction scheduled whose rows are not all deleted yet (`compactor.rs`).
    pub compacting: Option<Arc<Compaction>>,
    /// Users, roles, the auth switch, as the auth tables say; replaced by each auth change.
    pub auth: Arc<AuthView>,
}

/// What one key table row counts toward [`State::data_bytes`].
pub(crate) fn row_bytes(key: &[u8], value: &[u8]) -> i64 {
    (key.len() + value.len()) as i64
}

/// Which alarms some member raised (kept in the state, read from the alarm table at open and
/// after each alarm command).
#[derive(Default, Clone, Copy)]
pub(crate) struct Raised {
    /// NOSPACE: the store is capped (writes that could grow it are refused).
    pub nospace: bool,
    /// CORRUPT: members disagree on the data; every write but alarm changes is refused
    /// (etcd's corrupt applier), reads are still served so operators can inspect and back up.
    pub corrupt: bool,
}

impl Raised {
    /// What the alarm table holds.
    pub fn read(alarms: &impl AlarmScan) -> Result<Raised> {
        let mut raised = Raised::default();
        alarms.each_key(|k: &[u8]| {
            match alarm_from_key(k).map(|(_, a)| a) {
                Some(a) if a == AlarmType::Nospace as i32 => raised.nospace = true,
                Some(a) if a == AlarmType::Corrupt as i32 => raised.corrupt = true,
                _ => {}
            }
            Ok(())
        })?;
        Ok(raised)
    }
}
