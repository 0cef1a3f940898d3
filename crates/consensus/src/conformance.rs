//! openraft's storage conformance suite run against the log store and the state machine on
//! real files: appends, reads, truncation, purge, vote, committed index and applied state as
//! openraft expects them (the log store's group commit included).

use std::sync::Arc;

use cairn_storage::{Store, StoreOptions};
use openraft::testing::{StoreBuilder, Suite};

use crate::log_store::LogStore;
use crate::removal::Removal;
use crate::state_machine::StateMachine;
use crate::types::{StorageError, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft.redb")).expect("open log");
        let store: Arc<Store> =
            Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).expect("open store");
        let snap = dir.path().join("snap");
        std::fs::create_dir_all(&snap).expect("snap dir");
        let sm = StateMachine::new(store, snap, Removal::new(1), Default::default())?;
        Ok((dir, log, sm))
    }
}

type Tests = Suite<TypeConfig, LogStore, StateMachine, Builder, tempfile::TempDir>;

fn run<F: Future<Output = Result<(), StorageError>>>(
    test: impl FnOnce(LogStore, StateMachine) -> F,
) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (_dir, log, sm) = Builder.build().await.expect("build");
        test(log, sm).await.expect("conformance");
    });
}

/// Every test of the suite but `transfer_snapshot`: snapshots travel whole through the peer
/// transport (`transport/snapshot.rs`, tested by the cluster tests), not in raft's chunks.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            run(Tests::$name);
        })*
    };
}

suite!(
    last_membership_in_log_initial,
    last_membership_in_log,
    last_membership_in_log_multi_step,
    get_membership_initial,
    get_membership_from_log_and_empty_sm,
    get_membership_from_empty_log_and_sm,
    get_membership_from_log_le_sm_last_applied,
    get_membership_from_log_gt_sm_last_applied_1,
    get_membership_from_log_gt_sm_last_applied_2,
    get_initial_state_without_init,
    get_initial_state_membership_from_log_and_sm,
    get_initial_state_with_state,
    get_initial_state_last_log_gt_sm,
    get_initial_state_last_log_lt_sm,
    get_initial_state_log_ids,
    get_initial_state_re_apply_committed,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    try_get_log_entry,
    initial_logs,
    get_log_state,
    get_log_id,
    last_id_in_log,
    last_applied_state,
    purge_logs_upto_0,
    purge_logs_upto_5,
    purge_logs_upto_20,
    delete_logs_since_11,
    delete_logs_since_0,
    append_to_log,
    snapshot_meta,
    apply_single,
    apply_multiple,
);
