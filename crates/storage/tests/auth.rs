//! Auth in the store: commands applied with etcd's rules, permission checks at apply time,
//! and users and roles kept across a reopen and through a snapshot and its restore.

mod common;

use cairn_proto::authpb::Permission;
use cairn_proto::authpb::permission::Type;
use cairn_proto::etcdserverpb::*;
use cairn_storage::command::{AuthOp, AuthRequest, InternalAuthenticate};
use cairn_storage::snapshot::{RestoreOptions, SnapshotSource, read_header, restore_kv};
use cairn_storage::{AuthError, Command, Op, RequestAuth, Store, StoreError, StoreOptions};
use common::put;

fn auth(r: AuthRequest) -> Op {
    Op::Auth(AuthOp { request: Some(r) })
}

/// Applies `op` for `who` (`None`: the server itself); the command's own result.
fn run(s: &Store, op: Op, who: Option<RequestAuth>) -> Result<(), StoreError> {
    s.apply(&[Some(Command::new(op, who))], &[])
        .expect("storage works")
        .pop()
        .expect("one result")
        .map(|_| ())
}

fn setup(s: &Store) {
    let ok = |op| run(s, op, None).expect("setup");
    ok(auth(AuthRequest::UserAdd(AuthUserAddRequest {
        name: "root".into(),
        hashed_password: "$2b$04$hash".into(),
        ..Default::default()
    })));
    ok(auth(AuthRequest::RoleAdd(AuthRoleAddRequest {
        name: "root".into(),
    })));
    ok(auth(AuthRequest::UserGrantRole(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })));
    ok(auth(AuthRequest::UserAdd(AuthUserAddRequest {
        name: "alice".into(),
        hashed_password: "$2b$04$other".into(),
        ..Default::default()
    })));
    ok(auth(AuthRequest::RoleAdd(AuthRoleAddRequest {
        name: "app".into(),
    })));
    ok(auth(AuthRequest::RoleGrantPermission(
        AuthRoleGrantPermissionRequest {
            name: "app".into(),
            perm: Some(Permission {
                perm_type: Type::Readwrite as i32,
                key: b"/app/".to_vec(),
                range_end: b"/app0".to_vec(),
            }),
        },
    )));
    ok(auth(AuthRequest::UserGrantRole(AuthUserGrantRoleRequest {
        user: "alice".into(),
        role: "app".into(),
    })));
    ok(auth(AuthRequest::Enable(AuthEnableRequest {})));
}

fn who(user: &str, s: &Store) -> Option<RequestAuth> {
    Some(RequestAuth {
        user: user.into(),
        revision: s.auth().revision,
    })
}

fn denied(e: Result<(), StoreError>, want: AuthError) {
    match e {
        Err(StoreError::Auth(a)) => assert_eq!(a, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[test]
fn writes_are_checked_when_applied_and_auth_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    {
        let s = Store::open(&path, StoreOptions::default()).unwrap();
        denied(
            run(&s, auth(AuthRequest::Enable(AuthEnableRequest {})), None),
            AuthError::RootUserNotExist,
        );
        setup(&s);
        let view = s.auth();
        assert!(view.enabled);
        // seven changes after the initial revision 1; enable does not move it
        assert_eq!(view.revision, 8);
        run(&s, put("/app/x", b"1", 0), who("alice", &s)).unwrap();
        denied(
            run(&s, put("/other", b"1", 0), who("alice", &s)),
            AuthError::PermissionDenied,
        );
        denied(
            run(&s, put("/app/y", b"1", 0), Some(RequestAuth::default())),
            AuthError::UserEmpty,
        );
        let old = Some(RequestAuth {
            user: "alice".into(),
            revision: 3,
        });
        denied(
            run(&s, put("/app/y", b"1", 0), old),
            AuthError::AuthOldRevision,
        );
        run(&s, put("/anything", b"1", 0), who("root", &s)).unwrap();
        // the server's own commands are not checked
        run(&s, put("/internal", b"1", 0), None).unwrap();
        denied(
            run(
                &s,
                Op::Compact(CompactionRequest {
                    revision: 2,
                    physical: false,
                }),
                who("alice", &s),
            ),
            AuthError::PermissionDenied,
        );
        // root's root role cannot go while auth is on; neither can root
        denied(
            run(
                &s,
                auth(AuthRequest::UserRevokeRole(AuthUserRevokeRoleRequest {
                    name: "root".into(),
                    role: "root".into(),
                })),
                who("root", &s),
            ),
            AuthError::InvalidAuthMgmt,
        );
        denied(
            run(
                &s,
                auth(AuthRequest::UserDelete(AuthUserDeleteRequest {
                    name: "root".into(),
                })),
                who("root", &s),
            ),
            AuthError::InvalidAuthMgmt,
        );
        // only root manages users; a user may read itself
        denied(
            run(
                &s,
                auth(AuthRequest::UserAdd(AuthUserAddRequest {
                    name: "eve".into(),
                    ..Default::default()
                })),
                who("alice", &s),
            ),
            AuthError::PermissionDenied,
        );
        run(
            &s,
            auth(AuthRequest::UserGet(AuthUserGetRequest {
                name: "alice".into(),
            })),
            who("alice", &s),
        )
        .unwrap();
        // a token registered on apply, dropped when its user changes password
        run(
            &s,
            auth(AuthRequest::Authenticate(InternalAuthenticate {
                name: "alice".into(),
                simple_token: "tok.1".into(),
            })),
            None,
        )
        .unwrap();
        assert_eq!(s.token("tok.1").unwrap().user, "alice");
        run(
            &s,
            auth(AuthRequest::UserChangePassword(
                AuthUserChangePasswordRequest {
                    name: "alice".into(),
                    hashed_password: "$2b$04$new".into(),
                    ..Default::default()
                },
            )),
            who("root", &s),
        )
        .unwrap();
        assert!(s.token("tok.1").is_none());
        s.flush().unwrap();
    }
    let s = Store::open(&path, StoreOptions::default()).unwrap();
    let view = s.auth();
    assert!(view.enabled);
    assert_eq!(view.revision, 9);
    assert_eq!(view.user("alice").unwrap().roles, vec!["app".to_string()]);
    assert_eq!(view.user("alice").unwrap().password, b"$2b$04$new");
    assert_eq!(view.role("app").unwrap().key_permission.len(), 1);
}

#[test]
fn a_snapshot_and_its_restore_keep_users_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).unwrap();
    setup(&s);
    run(&s, put("/app/k", b"v", 0), who("alice", &s)).unwrap();
    let file = dir.path().join("snap.db");
    let source = SnapshotSource {
        cluster_id: 1,
        members: vec![],
        server_version: "test".into(),
    };
    let header = {
        let mut f = std::fs::File::create(&file).unwrap();
        s.write_snapshot(&source, 3, &mut f, &mut |_| {}).unwrap()
    };
    assert!(header.auth_enabled);
    assert_eq!((header.user_count, header.role_count), (2, 2));
    let info = read_header(&file).unwrap();
    let restored = dir.path().join("restored.redb");
    let body = restore_kv(&info, &restored, RestoreOptions::default(), &mut |_| {}).unwrap();
    assert_eq!((body.users, body.roles), (2, 2));
    let r = Store::open(&restored, StoreOptions::default()).unwrap();
    let (a, b) = (s.auth(), r.auth());
    assert_eq!((a.enabled, a.revision), (b.enabled, b.revision));
    assert_eq!(a.user("alice"), b.user("alice"));
    assert_eq!(a.role("app"), b.role("app"));
    assert_eq!(a.user("root"), b.user("root"));
}

#[test]
fn a_store_that_never_used_auth_writes_no_auth_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("kv.redb"), StoreOptions::default()).unwrap();
    run(&s, put("k", b"v", 0), None).unwrap();
    let mut out = Vec::new();
    let h = s
        .write_snapshot(&SnapshotSource::default(), 3, &mut out, &mut |_| {})
        .unwrap();
    assert!(!h.auth_enabled);
    assert_eq!((h.user_count, h.role_count), (0, 0));
    // one key row plus the end record: nothing for auth
    assert_eq!(h.record_count, 1);
}

#[test]
fn auth_disabled_offline_when_the_root_password_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let kv = cairn_storage::offline::kv_path(dir.path());
    std::fs::create_dir_all(kv.parent().unwrap()).unwrap();
    let before = {
        let s = Store::open(&kv, StoreOptions::default()).unwrap();
        setup(&s);
        s.flush().unwrap();
        let rev = s.auth().revision;
        s.close().ok().expect("closed");
        rev
    };
    let done = cairn_storage::offline::disable_auth(dir.path()).unwrap();
    assert!(done.was_enabled);
    assert_eq!(done.revision, before + 1);
    let s = Store::open(&kv, StoreOptions::default()).unwrap();
    let view = s.auth();
    assert!(!view.enabled, "auth stays off after a reopen");
    assert!(view.user("root").is_some(), "users and roles are kept");
}
