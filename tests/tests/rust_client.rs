//! The Rust `etcd-client` crate (the ecosystem's client, as Kubernetes' Rust operators and
//! many services use it) against etcd 3.4 and cairn with the same expectations: its auth API
//! end to end (users, roles, every grant kind, enable/disable), a connection that
//! authenticates with `ConnectOptions::with_user`, what it meets when refused, and a revoke
//! that reaches a client already connected.

use etcd_client::{
    Client, ConnectOptions, Error, Permission, PermissionType, RoleRevokePermissionOptions,
};

use cairn_tests::grpc::block_on;
use cairn_tests::{Kind, TestServer};

cairn_tests::both_kinds!(grpc: auth_api_of_the_etcd_client_crate);

fn status_of<T>(r: Result<T, Error>) -> (tonic::Code, String) {
    match r {
        Err(Error::GRpcStatus(s)) => (s.code(), s.message().to_string()),
        Err(other) => panic!("expected a gRPC status, got {other:?}"),
        Ok(_) => panic!("expected a gRPC status, got an answer"),
    }
}

fn denied() -> (tonic::Code, String) {
    (
        tonic::Code::PermissionDenied,
        "etcdserver: permission denied".into(),
    )
}

fn auth_api_of_the_etcd_client_crate(kind: Kind) {
    let s = TestServer::start(kind);
    let ep = s.endpoint();
    block_on(async move {
        let mut anon = Client::connect([&ep], None).await.unwrap();
        anon.user_add("root", "root", None).await.unwrap();
        anon.user_grant_role("root", "root").await.unwrap();
        anon.role_add("app").await.unwrap();
        for perm in [
            Permission::read_write("/app/").with_prefix(),
            Permission::read("config"),
            Permission::write("logs/").with_range_end("logs0"),
            Permission::read("z").with_from_key(),
        ] {
            anon.role_grant_permission("app", perm).await.unwrap();
        }
        anon.user_add("svc", "secret", None).await.unwrap();
        anon.user_grant_role("svc", "app").await.unwrap();
        anon.auth_enable().await.unwrap();

        // anonymous requests are refused now; bad credentials end the connect
        assert_eq!(
            status_of(anon.put("/app/x", "1", None).await),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: user name is empty".into()
            )
        );
        let wrong = Client::connect([&ep], Some(ConnectOptions::new().with_user("svc", "nope")));
        assert_eq!(
            status_of(wrong.await),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password".into()
            )
        );

        let mut root =
            Client::connect([&ep], Some(ConnectOptions::new().with_user("root", "root")))
                .await
                .unwrap();
        let mut svc = Client::connect(
            [&ep],
            Some(ConnectOptions::new().with_user("svc", "secret")),
        )
        .await
        .unwrap();

        // what root reads back
        assert_eq!(root.user_list().await.unwrap().users(), ["root", "svc"]);
        // granting root by gRPC stores no role record (etcdctl's `auth enable` adds one)
        assert_eq!(root.role_list().await.unwrap().roles(), ["app"]);
        assert_eq!(root.user_get("svc").await.unwrap().roles(), ["app"]);
        let perms: Vec<(i32, Vec<u8>, Vec<u8>)> = root
            .role_get("app")
            .await
            .unwrap()
            .permissions()
            .iter()
            .map(|p| (p.get_type(), p.key().to_vec(), p.range_end().to_vec()))
            .collect();
        let (r, w, rw) = (
            PermissionType::Read as i32,
            PermissionType::Write as i32,
            PermissionType::Readwrite as i32,
        );
        assert_eq!(
            perms,
            [
                (rw, b"/app/".to_vec(), b"/app0".to_vec()),
                (r, b"config".to_vec(), vec![]),
                (w, b"logs/".to_vec(), b"logs0".to_vec()),
                (r, b"z".to_vec(), vec![0]),
            ]
        );

        // every grant kind, as the svc user
        svc.put("/app/a", "1", None).await.unwrap();
        assert_eq!(
            svc.get("/app/a", None).await.unwrap().kvs()[0].value(),
            b"1"
        );
        svc.get("config", None).await.unwrap();
        assert_eq!(status_of(svc.put("config", "x", None).await), denied());
        svc.put("logs/1", "line", None).await.unwrap();
        assert_eq!(status_of(svc.get("logs/1", None).await), denied());
        svc.get("zzz", None).await.unwrap();
        assert_eq!(status_of(svc.get("other", None).await), denied());
        // user and role management is root's
        assert_eq!(status_of(svc.user_list().await), denied());
        assert_eq!(status_of(svc.role_add("mine").await), denied());

        // a revoke reaches the connected client at its next request
        root.role_revoke_permission(
            "app",
            "/app/",
            Some(RoleRevokePermissionOptions::new().with_prefix()),
        )
        .await
        .unwrap();
        assert_eq!(status_of(svc.put("/app/b", "2", None).await), denied());

        // a password change: the old one no longer connects, the new one does
        root.user_change_password("svc", "rotated").await.unwrap();
        let old = Client::connect(
            [&ep],
            Some(ConnectOptions::new().with_user("svc", "secret")),
        );
        assert_eq!(
            status_of(old.await).1,
            "etcdserver: authentication failed, invalid user ID or password"
        );
        Client::connect(
            [&ep],
            Some(ConnectOptions::new().with_user("svc", "rotated")),
        )
        .await
        .unwrap();

        // root cannot lose its role while auth is on; disable serves anonymous requests again
        assert_eq!(
            status_of(root.user_revoke_role("root", "root").await),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: invalid auth management".into()
            )
        );
        root.user_delete("svc").await.unwrap();
        root.role_delete("app").await.unwrap();
        root.auth_disable().await.unwrap();
        let mut anon = Client::connect([&ep], None).await.unwrap();
        anon.put("/app/after", "1", None).await.unwrap();
        assert_eq!(anon.user_list().await.unwrap().users(), ["root"]);
    });
}
