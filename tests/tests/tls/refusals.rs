//! Who a client-certificate TLS server refuses, and that it serves on afterwards: the same
//! body against etcd and cairn. cairnutl's errors are checked to say why.

use cairn_tests::pki::Pki;
use cairn_tests::{Kind, TestServer, both_kinds};
use cairn_tls::testpki::Leaf;

use crate::{cairnutl, ctl, ctl_ok, curl, text};

both_kinds!(etcdctl: refused_clients_and_the_server_serves_on);

fn refused_clients_and_the_server_serves_on(kind: Kind) {
    let mut pki = Pki::new("cluster-ca");
    let tls = pki.server_tls(false);
    let revoked = pki.issue("revoked", "revoked-client");
    let crl = pki.crl("crl.pem", &[revoked.serial]);
    let expired = pki.issue_leaf("expired", &Leaf::loopback("old-client").expired());
    let mut other = Pki::new("other-ca");
    let foreign = other.issue("foreign", "root");
    let crl_arg = crl.display().to_string();
    let s = TestServer::start_tls(kind, &tls, &["--client-crl-file", &crl_arg]);
    let url = format!("{}/health", s.url());
    let ca = tls.ca.display().to_string();

    let with_cert = |cert: &cairn_tests::pki::Pair| {
        curl(&[
            "--cacert".into(),
            ca.clone(),
            "--cert".into(),
            cert.cert.display().to_string(),
            "--key".into(),
            cert.key.display().to_string(),
            url.clone(),
        ])
    };
    for (what, out) in [
        (
            "no client certificate",
            curl(&["--cacert".into(), ca.clone(), url.clone()]),
        ),
        ("another CA's certificate", with_cert(&foreign)),
        ("an expired certificate", with_cert(&expired)),
        ("a revoked certificate", with_cert(&revoked)),
    ] {
        assert!(
            !out.status.success() && !text(&out.stdout).contains("health"),
            "{what} was let in: {}",
            text(&out.stdout)
        );
    }
    // plain HTTP on the TLS port: etcd closes the connection, cairn answers Go's 400 text
    let plain = curl(&["-f".into(), url.replace("https://", "http://")]);
    assert!(!plain.status.success(), "plain HTTP was served");
    if kind == Kind::Cairn {
        let body = curl(&[url.replace("https://", "http://")]);
        assert!(
            text(&body.stdout).contains("Client sent an HTTP request to an HTTPS server."),
            "{}",
            text(&body.stdout)
        );
    }
    // etcdctl without a client certificate is refused too
    let ep = format!("--endpoints={}", s.url());
    let out = cairn_tests::etcdctl::etcdctl(
        &s.url(),
        &[
            "--cacert",
            &ca,
            "--dial-timeout=1s",
            "--command-timeout=2s",
            "get",
            "k",
        ],
    );
    assert!(
        !out.status.success(),
        "etcdctl without a certificate was served"
    );

    // cairnutl says why
    let refused_at = |ep: &str, args: &[&str], why: &str| {
        let mut all = vec![ep, "--dial-timeout=2s", "--command-timeout=3s"];
        all.extend_from_slice(args);
        all.extend(["endpoint", "status"]);
        let out = cairnutl(&all);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "cairnutl {args:?} was served");
        assert!(
            err.contains(why),
            "cairnutl {args:?}: expected {why:?} in {err}"
        );
    };
    let refused = |args: &[&str], why: &str| refused_at(&ep, args, why);
    refused(&["--cacert", &ca], "client certificate");
    let (fc, fk) = (
        foreign.cert.display().to_string(),
        foreign.key.display().to_string(),
    );
    refused(
        &["--cacert", &ca, "--cert", &fc, "--key", &fk],
        "client certificate",
    );
    // the server's certificate is not trusted without the cluster's CA
    refused(
        &["--cacert", &other.ca_file.display().to_string()],
        "not signed by a trusted CA",
    );
    // a plain-text client on the TLS port
    let plain_ep = ep.replace("https://", "http://");
    refused_at(&plain_ep, &[], "serving TLS on this port");

    // after all that, a good client is served as before
    assert_eq!(ctl_ok(&s, &["put", "after", "refusals"]), "OK\n");
    let health = ctl(&s, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health.stderr));
}
