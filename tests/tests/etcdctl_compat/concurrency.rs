//! `etcdctl lock` and `etcdctl elect`, built on leases, txns and watches.

use cairn_tests::json::{int, keys};
use cairn_tests::{Background, Kind, TestServer, etcdctl_json, etcdctl_ok, wait};

use crate::WAIT;

compat_tests!(
    lock_runs_command,
    lock_waits_for_holder,
    elect_listen_and_campaign
);

fn lock_runs_command(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    assert_eq!(
        etcdctl_ok(ep, &["lock", "mylock", "--", "echo", "hi"]),
        "hi\n"
    );
    let out = etcdctl_ok(
        ep,
        &["lock", "mylock", "--", "sh", "-c", "echo $ETCD_LOCK_KEY"],
    );
    assert!(
        out.starts_with("mylock/"),
        "lock key is <name>/<lease hex>: {out:?}"
    );
    // The lock key is deleted on release.
    assert!(keys(&etcdctl_json(ep, &["get", "mylock", "--prefix"])).is_empty());
}

fn lock_waits_for_holder(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let mut holder = Background::etcdctl(ep, &["lock", "mylock"]);
    let held = holder.wait_lines(1, WAIT)[0].clone();
    assert!(held.starts_with("mylock/"), "{held}");

    let mut waiter = Background::etcdctl(ep, &["lock", "mylock", "--", "echo", "second"]);
    // The waiter queues by creating its own key under the lock prefix.
    wait::until(WAIT, "the second lock key", || {
        let got = etcdctl_json(ep, &["get", "mylock", "--prefix"]);
        (int(&got, "count") == 2).then_some(())
    });
    assert!(
        waiter.is_running() && waiter.lines().is_empty(),
        "waiter must block while held"
    );

    holder.terminate(); // etcdctl unlocks on SIGTERM
    let status = waiter.wait_exit(WAIT);
    assert!(status.success(), "waiter: {status}");
    assert_eq!(waiter.lines(), ["second"]);
}

fn elect_listen_and_campaign(kind: Kind) {
    let server = TestServer::start(kind);
    let ep = &server.endpoint();
    let mut listener = Background::etcdctl(ep, &["elect", "--listen", "myelect"]);
    let mut first = Background::etcdctl(ep, &["elect", "myelect", "p1"]);
    let won = first.wait_lines(2, WAIT);
    assert!(won[0].starts_with("myelect/"), "{won:?}");
    assert_eq!(won[1], "p1");
    assert_eq!(
        listener.wait_lines(2, WAIT),
        won,
        "the listener sees the leader's key and value"
    );

    let mut second = Background::etcdctl(ep, &["elect", "myelect", "p2"]);
    wait::until(WAIT, "the second candidate's key", || {
        (int(&etcdctl_json(ep, &["get", "myelect", "--prefix"]), "count") == 2).then_some(())
    });
    assert!(second.lines().is_empty(), "p2 must wait while p1 leads");

    first.terminate(); // etcdctl resigns on SIGTERM
    let won = second.wait_lines(2, WAIT);
    assert!(
        won[0].starts_with("myelect/") && won[0] != listener.lines()[0],
        "{won:?}"
    );
    assert_eq!(won[1], "p2");
    assert_eq!(listener.wait_lines(4, WAIT)[2..], won[..]);
}
