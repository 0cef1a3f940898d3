//! Maintenance and cluster calls under auth: snapshot, defrag, hash, hashkv and membership
//! changes need the root role; compaction, alarm disarm and move-leader too (where etcd
//! 3.4.23 has a hole, see the crate doc); status, health, alarm list and member list serve
//! any user.

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::{AlarmRequest, AlarmType, HashRequest, MoveLeaderRequest};
use cairn_tests::grpc::{block_on, with_token};
use cairn_tests::{Clients, Kind, TestServer, ports};

use crate::{Ctl, DENIED, assert_status, auth_server, member_id_hex, refuses_like_later_etcd};

auth_tests!(
    snapshot_defrag_and_hashes_need_root,
    member_changes_need_root,
    compaction_alarms_and_move_leader_need_root,
    status_health_and_member_list_serve_any_user,
);

/// etcd refuses the maintenance calls with its auth store's own error, not converted to a
/// gRPC one: code Unknown, text `auth: ...`.
const UNKNOWN_DENIED: &str = "rpc error: code = Unknown desc = auth: permission denied";
const UNKNOWN_NO_USER: &str = "rpc error: code = Unknown desc = auth: user name is empty";

/// `Maintenance/Hash` as `user` (`None`: without a token).
fn hash(s: &TestServer, user: Option<(&str, &str)>) -> Result<u32, tonic::Status> {
    let ep = s.endpoint();
    block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        let req = match user {
            Some((name, password)) => {
                with_token(HashRequest {}, &c.authenticate(name, password).await?)
            }
            None => tonic::Request::new(HashRequest {}),
        };
        Ok(c.maintenance.hash(req).await?.into_inner().hash)
    })
}

/// `Maintenance/Alarm` DEACTIVATE of member `member_id`'s NOSPACE alarm, as `user`.
fn deactivate_nospace(
    s: &TestServer,
    (name, password): (&str, &str),
    member_id: u64,
) -> Result<(), tonic::Status> {
    let ep = s.endpoint();
    let (name, password) = (name.to_string(), password.to_string());
    block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        let token = c.authenticate(&name, &password).await?;
        let req = AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            member_id,
            alarm: AlarmType::Nospace as i32,
        };
        c.maintenance
            .alarm(with_token(req, &token))
            .await
            .map(|_| ())
    })
}

/// etcd's e2e `authTestSnapshot` and `authTestDefrag`, plus Hash and HashKV.
fn snapshot_defrag_and_hashes_need_root(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    let ep = s.endpoint();
    root.ok(&["put", "foo", "bar"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.db");
    let file = file.display().to_string();

    let f = user.fail(&["snapshot", "save", &file]);
    assert_eq!(
        (f.code, f.last_line()),
        (5, format!("Error: {UNKNOWN_DENIED}").as_str())
    );
    let f = Ctl::anonymous(&s).fail(&["snapshot", "save", &file]);
    assert_eq!(
        (f.code, f.last_line()),
        (5, format!("Error: {UNKNOWN_NO_USER}").as_str())
    );
    assert!(!std::path::Path::new(&file).exists());

    let f = user.fail(&["defrag"]);
    assert_eq!(
        (f.code, f.messages().as_str()),
        (
            1,
            format!("Failed to defragment etcd member[{ep}] ({UNKNOWN_DENIED})\n").as_str()
        )
    );
    let f = user.fail(&["endpoint", "hashkv"]);
    assert_eq!(
        (f.code, f.messages().as_str()),
        (
            1,
            format!("Failed to get the hash of endpoint {ep} ({UNKNOWN_DENIED})\nError: {UNKNOWN_DENIED}\n")
                .as_str()
        )
    );
    assert_status(
        hash(&s, Some(("test-user", "pass"))),
        tonic::Code::Unknown,
        "auth: permission denied",
    );
    assert_status(
        hash(&s, None),
        tonic::Code::Unknown,
        "auth: user name is empty",
    );

    assert_eq!(
        root.ok(&["snapshot", "save", &file]),
        format!("Snapshot saved at {file}\n")
    );
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    assert_eq!(
        root.ok(&["defrag"]),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    let hashkv = root.ok(&["endpoint", "hashkv"]);
    assert!(hashkv.starts_with(&format!("{ep}, ")), "{hashkv}");
    hash(&s, Some(("root", "root"))).expect("root may hash");
}

/// etcd's e2e `authTestMemberAdd`, `authTestMemberRemove` and `authTestMemberUpdate`, on a
/// learner that never starts.
fn member_changes_need_root(kind: Kind) {
    let (_s, root, user) = auth_server(kind);
    let [a, b] = ports::free_ports(2)[..] else {
        unreachable!()
    };
    let (url, url2) = (
        format!("http://127.0.0.1:{a}"),
        format!("http://127.0.0.1:{b}"),
    );
    let peer = format!("--peer-urls={url}");
    assert_eq!(
        user.err(&["member", "add", "n2", "--learner", &peer]),
        DENIED
    );
    let added = root.ok(&["member", "add", "n2", "--learner", &peer]);
    let id = added
        .strip_prefix("Member ")
        // etcdctl prints the ID with %16x: an ID with a leading zero nibble is space-padded
        .and_then(|rest| rest.trim_start().split(' ').next())
        .unwrap_or_else(|| panic!("member add printed {added:?}"))
        .to_string();
    assert!(added.contains(" added to cluster "), "{added}");

    let peer2 = format!("--peer-urls={url2}");
    assert_eq!(user.err(&["member", "update", &id, &peer2]), DENIED);
    assert_eq!(user.err(&["member", "promote", &id]), DENIED);
    assert_eq!(user.err(&["member", "remove", &id]), DENIED);
    let list = root.ok(&["member", "list"]);
    assert!(
        list.contains(&format!("{id}, unstarted, , {url}, , true\n")),
        "{list}"
    );

    // %16x again: "Member  c8c3e1fdf6f156f updated" for an ID with a leading zero nibble
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let updated = words(&root.ok(&["member", "update", &id, &peer2]));
    assert!(
        updated.starts_with(&format!("Member {id} updated in cluster ")),
        "{updated}"
    );
    let removed = words(&root.ok(&["member", "remove", &id]));
    assert!(
        removed.starts_with(&format!("Member {id} removed from cluster ")),
        "{removed}"
    );
    assert!(!root.ok(&["member", "list"]).contains(&id));
}

/// Compaction, alarm changes and move-leader need the root role. etcd 3.4.23 lets any user
/// (even one without a token) compact, disarm and move the leader; 3.4.42 and 3.5.28 refuse
/// them with "etcdserver: permission denied", and so does cairn. `etcdctl alarm disarm`
/// with no alarm raised only lists alarms (clientv3 disarms each listed one), which any user
/// may: the deactivation itself is sent over gRPC.
fn compaction_alarms_and_move_leader_need_root(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    root.ok(&["put", "k", "1"]);
    root.ok(&["put", "k", "2"]); // revision 3
    let own = member_id_hex(&root);
    let fixed = refuses_like_later_etcd(kind);

    let user_calls: [(&[&str], String); 2] = [
        (&["compaction", "2"], "compacted revision 2\n".to_string()),
        (
            &["move-leader", &own],
            format!("Leadership transferred from {own} to {own}\n"),
        ),
    ];
    for (args, etcd_3_4_23) in &user_calls {
        if fixed {
            assert_eq!(user.err(args), DENIED, "{args:?}");
        } else {
            assert_eq!(user.ok(args), *etcd_3_4_23, "{args:?}");
        }
    }
    assert_eq!(user.ok(&["alarm", "list"]), "", "listing alarms is open");
    assert_eq!(
        user.ok(&["alarm", "disarm"]),
        "",
        "nothing listed, nothing sent"
    );
    let member_id = u64::from_str_radix(&own, 16).unwrap();
    let disarmed = deactivate_nospace(&s, ("test-user", "pass"), member_id);
    if fixed {
        assert_status(
            disarmed,
            tonic::Code::PermissionDenied,
            "etcdserver: permission denied",
        );
    } else {
        disarmed.expect("etcd 3.4.23 lets any user disarm");
    }
    deactivate_nospace(&s, ("root", "root"), member_id).expect("root may disarm");

    assert_eq!(root.ok(&["compaction", "3"]), "compacted revision 3\n");
    assert_eq!(root.ok(&["alarm", "disarm"]), "");
    // root passes the auth check and meets the membership one
    let ep = s.endpoint();
    let target = u64::from_str_radix(&own, 16).unwrap() ^ 1;
    let moved = block_on(async move {
        let mut c = Clients::connect(&ep).await.unwrap();
        let token = c.authenticate("root", "root").await?;
        let req = with_token(MoveLeaderRequest { target_id: target }, &token);
        c.maintenance.move_leader(req).await.map(|r| r.into_inner())
    });
    assert_status(
        moved,
        tonic::Code::FailedPrecondition,
        "etcdserver: bad leader transferee",
    );
}

/// etcd's e2e `authTestEndpointHealth`: health "succeeds" for a user that may not read the
/// `health` key (a permission refusal went through consensus); without a user it fails.
fn status_health_and_member_list_serve_any_user(kind: Kind) {
    let (s, root, user) = auth_server(kind);
    let ep = s.endpoint();
    let id = member_id_hex(&root);
    let healthy = format!("{ep} is healthy: successfully committed proposal: took = ");
    for ctl in [&root, &user] {
        // etcdctl 3.4 prints the health line on stderr, after clientv3's retry warning
        // for test-user's refused read
        let out = ctl.run(&["endpoint", "health"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| !l.starts_with("{\"level\""))
            .unwrap_or("");
        assert!(
            out.status.success() && line.starts_with(&healthy),
            "{stderr}"
        );
        let status = ctl.ok(&["endpoint", "status"]);
        assert!(status.starts_with(&format!("{ep}, {id}, ")), "{status}");
        assert_eq!(
            ctl.ok(&["member", "list"]),
            format!("{id}, started, s1, {}, {}, false\n", s.peer_url(), s.url())
        );
    }
    root.ok(&["role", "grant-permission", "test-role", "read", "health"]);
    assert!(user.run(&["endpoint", "health"]).status.success());

    let f = Ctl::anonymous(&s).fail(&["endpoint", "health"]);
    assert_eq!(
        (f.code, f.messages().as_str()),
        (
            1,
            format!(
                "{ep} is unhealthy: failed to commit proposal: etcdserver: user name is empty\nError: unhealthy cluster\n"
            )
            .as_str()
        )
    );
}
