//! Client certificates as users (etcd's e2e `CertCN`, `CertCNAndUsername`,
//! `CertCNAndUsernameNoPassword`): with `--client-cert-auth`, a request without a token runs
//! as the user named by the verified certificate's common name; a token, when given, wins.
//! Kubernetes' API server reaches etcd this way (a no-password user per certificate).

use cairn_tests::pki::Pki;
use cairn_tests::{Kind, TestServer};

use crate::{Ctl, DENIED, TEST_USER, add_test_user, enable_auth_through};

auth_tests!(certificate_common_name_is_the_user);

fn certificate_common_name_is_the_user(kind: Kind) {
    let mut pki = Pki::new("cn-ca");
    // the harness's own client certificate has CN `root`
    let tls = pki.server_tls(false);
    let s = TestServer::start_tls(kind, &tls, &[]);
    let as_root_cert = Ctl::with_cert(&s, &tls.ca, &tls.client);
    let root = enable_auth_through(as_root_cert.clone());
    add_test_user(&root);

    // CN root without --user is root
    assert_eq!(as_root_cert.ok(&["user", "list"]), "root\ntest-user\n");

    // CN test-user: test-user's grants, readwrite on foo only
    let test_user_cert = pki.issue("test-user", "test-user");
    let cn = Ctl::with_cert(&s, &tls.ca, &test_user_cert);
    assert_eq!(cn.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(cn.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(cn.err(&["put", "baz", "x"]), DENIED);
    assert_eq!(cn.err(&["user", "list"]), DENIED);

    // a no-password user that exists for its certificate; --user beside it wins
    root.ok(&["user", "add", "cn-only", "--no-password"]);
    root.ok(&["role", "add", "cn-role"]);
    root.ok(&["role", "grant-permission", "cn-role", "readwrite", "bar"]);
    root.ok(&["user", "grant-role", "cn-only", "cn-role"]);
    let cn_only_cert = pki.issue("cn-only", "cn-only");
    let cn_only = Ctl::with_cert(&s, &tls.ca, &cn_only_cert);
    assert_eq!(cn_only.ok(&["put", "bar", "1"]), "OK\n");
    assert_eq!(cn_only.err(&["put", "foo", "1"]), DENIED);
    let both = cn_only.with_user(TEST_USER);
    assert_eq!(both.ok(&["put", "foo", "2"]), "OK\n");
    assert_eq!(both.err(&["put", "bar", "2"]), DENIED);

    // a CN no user has: every key request is denied; after the user is deleted, likewise
    let stranger = Ctl::with_cert(&s, &tls.ca, &pki.issue("stranger", "stranger"));
    assert_eq!(stranger.err(&["get", "foo"]), DENIED);
    assert_eq!(stranger.err(&["put", "foo", "3"]), DENIED);
    root.ok(&["user", "delete", "cn-only"]);
    assert_eq!(cn_only.err(&["get", "bar"]), DENIED);
    assert_eq!(root.ok(&["get", "foo", "--print-value-only"]), "2\n");
}
