//! The robustness harness's bounded set (issue 20; `tests/src/robustness`): real clusters
//! under concurrent clients and seeded faults, every history checked for linearizability
//! with porcupine-rs, every watch stream against the history, HashKV across members. The
//! same scenarios against real etcd 3.4 check the harness itself (etcd must pass), and a
//! deliberately wrong model must fail on a real history. `tests/robustness/soak.sh` runs
//! random seeds for as long as it is given.

use cairn_tests::Kind;
use cairn_tests::robustness::faults::Faults;
use cairn_tests::robustness::model::DeletesIgnored;
use cairn_tests::robustness::{Scenario, check_with, run};

fn scenario(kind: Kind, members: usize, faults: Faults, seed: u64) -> Scenario {
    Scenario {
        kind,
        members,
        faults,
        seconds: 12,
        clients: 6,
        keys: 4,
        seed,
    }
}

fn passes(s: Scenario) {
    let report = run(&s);
    assert!(report.operations > 100, "{}", report.describe(&s));
    assert!(report.violations.is_empty(), "{}", report.describe(&s));
}

#[test]
fn cairn_three_members_killed_and_paused() {
    passes(scenario(Kind::Cairn, 3, Faults::KillAndPause, 1));
}

#[test]
fn cairn_one_member_killed() {
    passes(scenario(Kind::Cairn, 1, Faults::Kill, 2));
}

#[test]
fn etcd_three_members_killed_and_paused() {
    if !cairn_tests::require_etcd() {
        return;
    }
    passes(scenario(Kind::Etcd, 3, Faults::KillAndPause, 3));
}

/// The checker proves something: a real history that deletes and then reads is not
/// linearizable under a model where deletes do nothing.
#[test]
fn a_wrong_model_fails_on_a_real_history() {
    let s = Scenario {
        seconds: 4,
        ..scenario(Kind::Cairn, 1, Faults::Kill, 4)
    };
    let report = run(&s);
    assert!(report.violations.is_empty(), "{}", report.describe(&s));
    let wrong = check_with::<DeletesIgnored>(&report.history);
    assert!(
        wrong.iter().any(|v| v.contains("not linearizable")),
        "the wrong model passed {} operations",
        report.operations
    );
}
