//! TLS end to end: real etcdctl 3.4, curl and cairnutl against TLS servers on loopback, each
//! body run against real etcd 3.4 (the oracle) and against cairn. Certificates are made by
//! the tests (`cairn_tests::pki`); nothing secret is committed.
//!
//! - [`clients`]: etcdctl (kv, txn, watch, lease, snapshot, `--cluster`, member list) and
//!   curl (`/health`, `/metrics`, `/version`) with client certificates; `check perf`.
//! - [`refusals`]: no certificate, another CA, expired, revoked, plain HTTP: refused, and
//!   the server serves on.
//! - [`rotation`]: certificate files replaced while serving.
//! - [`cluster`]: three members with peer and client TLS; a leader killed under writes; a
//!   member with the wrong peer CA.
//! - [`dr`]: a client-certificate TLS etcd backed up and mirrored by cairnutl into a TLS cairn;
//!   a continuous backup of a TLS server with auth; cairnutl's endpoint commands against both.
//! - [`startup`]: bad certificate files, `--auto-tls`, mixed http/https listeners, https
//!   metrics, cipher suites.

mod clients;
mod cluster;
mod dr;
mod refusals;
mod rotation;
mod startup;

use std::process::{Command, Output};

use cairn_tests::pki::{Pki, ServerTls};
use cairn_tests::{Kind, TestServer, etcdctl};

/// A fresh CA and a one-member server of `kind` with client-certificate TLS on its client
/// URL. The `Pki` must outlive the server (it holds the files).
pub fn tls_server(kind: Kind, extra: &[&str]) -> (Pki, ServerTls, TestServer) {
    let mut pki = Pki::new("cairn-test-ca");
    let tls = pki.server_tls(false);
    let server = TestServer::start_tls(kind, &tls, extra);
    (pki, tls, server)
}

/// etcdctl with the server's URL and the harness's client certificate.
pub fn ctl(server: &TestServer, args: &[&str]) -> Output {
    let all = with_tls(server, args);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    etcdctl::etcdctl(&server.url(), &all)
}

/// [`ctl`], asserting success; its stdout.
pub fn ctl_ok(server: &TestServer, args: &[&str]) -> String {
    let out = ctl(server, args);
    etcdctl::assert_success(&out, &args.join(" "));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `args` after `--cacert --cert --key`.
pub fn with_tls(server: &TestServer, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = server.tls().map(|t| t.client_args()).unwrap_or_default();
    all.extend(args.iter().map(|s| s.to_string()));
    all
}

/// Real curl; `args` as given (`-sS` added).
pub fn curl(args: &[String]) -> Output {
    Command::new("curl")
        .arg("-sS")
        .arg("--max-time")
        .arg("10")
        .args(args)
        .output()
        .expect("run curl (Debian's curl package)")
}

/// `cairnutl <args>`.
pub fn cairnutl(args: &[&str]) -> Output {
    Command::new(cairn_tests::cairnutl_bin())
        .args(args)
        .env_remove("ETCDCTL_ENDPOINTS")
        .output()
        .expect("run cairnutl")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
