//! Process-level test harness: real `cairn` and real `etcd`/`etcdctl` on loopback.
//!
//! # Layout
//! - [`binaries`]: where the `cairn`, `cairnutl`, `etcd` and `etcdctl` executables are, building
//!   the cairn ones on first use; [`require_etcd`] gates tests on the etcd packages.
//! - [`ports`]: free loopback ports picked at run time.
//! - [`server`]: [`TestServer`] starts either kind of server as a one-member cluster on its own
//!   ports and data dir, waits until it answers `Maintenance/Status` with a leader, and kills it
//!   on drop (printing its log tail when the test panicked).
//! - [`cluster`]: [`TestCluster`], several cairn members from one `--initial-cluster`, grown
//!   with `etcdctl member add`.
//! - [`etcdctl`]: runs etcdctl with a timeout, plus [`Background`] for long-running commands
//!   (`watch`, `lock`, `elect`) whose output lines are awaited with a deadline.
//! - [`grpc`]: tonic clients for every service, for direct API tests (dialed by
//!   `cairn_client`, plain or TLS); [`grpc::with_token`] and [`Clients::authenticate`] for
//!   tests that hold on to an auth token.
//! - [`pki`]: certificates made by the tests (CA, server, client, expired, revoked) and a
//!   server's TLS setup ([`pki::ServerTls`]) as flags for the servers, etcdctl and curl.
//! - [`gateway`]: etcd's JSON gateway with real curl, answers normalized to compare.
//! - [`json`], [`base64`]: reading etcdctl's `-w json` output (base64 keys and values).
//! - [`hashkv`], [`etcd_ids`]: models of etcd's HashKV and member/cluster ID derivation, so
//!   tests can check values a server reports against values computed from what the test did.
//! - [`prng`]: a seeded SplitMix64 for reproducible randomized tests.
//! - [`wait`]: polling observable state with a deadline instead of sleeping.
//!
//! The same test body runs against both [`Kind`]s: etcd is the oracle, cairn must match it.

pub mod base64;
pub mod binaries;
pub mod cluster;
pub mod disk;
pub mod etcd_ids;
pub mod etcdctl;
pub mod gateway;
pub mod grpc;
pub mod hashkv;
pub mod http;
pub mod json;
pub mod mirror;
pub mod pki;
pub mod ports;
pub mod prng;
pub mod robustness;
pub mod s3;
pub mod server;
pub mod wait;

pub use binaries::{
    cairn_bin, cairnutl, cairnutl_bin, output_text, require_etcd, require_iptables,
};
pub use cluster::TestCluster;
pub use etcdctl::{Background, etcdctl, etcdctl_err, etcdctl_json, etcdctl_ok, etcdctl_stdin};
pub use grpc::Clients;
pub use server::{Kind, TestServer};

/// Generates `<body>::etcd` and `<body>::cairn` tests for each `fn <body>(Kind)`: the same
/// body against the oracle and against cairn. `etcdctl:` gates the cairn side on the etcd
/// packages too (the body drives etcdctl); `grpc:` runs it regardless.
#[macro_export]
macro_rules! both_kinds {
    (@gate etcdctl) => { $crate::require_etcd() };
    (@gate grpc) => { true };
    ($gate:ident: $($body:ident),* $(,)?) => {$(
        mod $body {
            #[test]
            fn etcd() {
                if $crate::require_etcd() {
                    super::$body($crate::Kind::Etcd);
                }
            }

            #[test]
            fn cairn() {
                if $crate::both_kinds!(@gate $gate) {
                    super::$body($crate::Kind::Cairn);
                }
            }
        }
    )*};
}
