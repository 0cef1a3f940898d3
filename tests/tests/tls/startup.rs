//! Starting cairn with TLS flags: bad files and bad flags end in one clear error naming the
//! file or flag; `--auto-tls`; http and https listeners side by side; an https metrics URL;
//! `--cipher-suites` and `--tls-max-version` in force.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use cairn_tests::pki::{Pki, ServerTls};
use cairn_tests::{cairn_bin, ports, require_etcd, wait};

use crate::{curl, text};

/// A cairn process on its own ports and data dir, killed on drop.
struct Proc {
    child: Child,
    dir: tempfile::TempDir,
}

impl Proc {
    fn start(args: &[String]) -> Proc {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("log")).expect("log");
        let child = Command::new(cairn_bin())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn cairn");
        Proc { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Waits for the process to exit by itself; `None` if it still runs after `timeout`.
    fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(wait::POLL);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- cairn log ---\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Single-member flags on fresh ports; `client` is the client URL list with `{c}` (and
/// `{c2}`, `{m}`) standing for fresh ports.
fn member_args(client: &str) -> (Vec<String>, [u16; 3]) {
    let p = ports::free_ports(4);
    let client = client
        .replace("{c}", &p[0].to_string())
        .replace("{c2}", &p[1].to_string())
        .replace("{m}", &p[2].to_string());
    let peer = format!("http://127.0.0.1:{}", p[3]);
    let args = vec![
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client.split(',').next().unwrap_or_default().to_string(),
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("default={peer}"),
    ];
    (args, [p[0], p[1], p[2]])
}

fn tls_args(tls: &ServerTls) -> Vec<String> {
    tls.server_args()
}

fn fails_at_start(extra: &[String], expect: &[&str]) {
    let (mut args, _) = member_args("https://127.0.0.1:{c}");
    args.extend_from_slice(extra);
    let mut p = Proc::start(&args);
    let status = p
        .exit_within(Duration::from_secs(20))
        .expect("cairn must refuse to start");
    assert!(!status.success());
    let log = p.log();
    for e in expect {
        assert!(log.contains(e), "expected {e:?} in:\n{log}");
    }
    assert!(!log.contains("panicked"), "{log}");
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn bad_certificate_files_and_flags_are_named() {
    let mut pki = Pki::new("ca");
    let tls = pki.server_tls(false);
    let garbage = pki.dir().join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let other = pki.issue("other", "other");

    let mut args = tls_args(&tls);
    args[1] = path(&garbage);
    fails_at_start(&args, &[&path(&garbage), "no PEM certificate"]);

    let mut args = tls_args(&tls);
    args[3] = path(&other.key);
    fails_at_start(&args, &[&path(&other.key), "does not fit the certificate"]);

    let mut args = tls_args(&tls);
    args[5] = "/nonexistent/ca.crt".into();
    fails_at_start(
        &args,
        &["cannot read the trusted CA file /nonexistent/ca.crt"],
    );

    fails_at_start(
        &[],
        &[
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:",
        ],
    );
    let mut args = tls_args(&tls);
    args.extend([
        "--cipher-suites".into(),
        "TLS_RSA_WITH_AES_128_CBC_SHA".into(),
    ]);
    fails_at_start(&args, &["TLS_RSA_WITH_AES_128_CBC_SHA", "does not support"]);
    let mut args = tls_args(&tls);
    args.extend(["--tls-min-version".into(), "TLS1.1".into()]);
    fails_at_start(&args, &["unexpected TLS version \"TLS1.1\""]);
}

#[test]
fn auto_tls_serves_a_self_signed_certificate() {
    if !require_etcd() {
        return;
    }
    let (mut args, [c, _, _]) = member_args("https://127.0.0.1:{c}");
    args.push("--auto-tls".into());
    let p = Proc::start(&args);
    let url = format!("https://127.0.0.1:{c}/health");
    wait::until(
        Duration::from_secs(20),
        "cairn to serve https with --auto-tls",
        || {
            let out = curl(&["-k".into(), url.clone()]);
            text(&out.stdout)
                .contains("\"health\":\"true\"")
                .then_some(())
        },
    );
    let dir = p.data_dir().join("fixtures").join("client");
    assert!(dir.join("cert.pem").exists() && dir.join("key.pem").exists());
    // a verifying client does not trust it
    let out = curl(&[url]);
    assert!(!out.status.success());
    // etcdctl with --insecure-skip-tls-verify does
    let out = cairn_tests::etcdctl::etcdctl(
        &format!("https://127.0.0.1:{c}"),
        &[
            "--insecure-skip-tls-verify",
            "--insecure-transport=false",
            "put",
            "a",
            "b",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn http_and_https_listeners_and_https_metrics() {
    let mut pki = Pki::new("ca");
    let tls = pki.server_tls(false);
    let (mut args, [c, c2, m]) = member_args("https://127.0.0.1:{c},http://127.0.0.1:{c2}");
    args.extend(tls_args(&tls));
    args.extend([
        "--listen-metrics-urls".into(),
        format!("https://127.0.0.1:{m}"),
    ]);
    let _p = Proc::start(&args);
    let with_cert = |url: String| {
        let mut a = tls.curl_args();
        a.push(url);
        curl(&a)
    };
    wait::until(Duration::from_secs(20), "the https client URL", || {
        text(&with_cert(format!("https://127.0.0.1:{c}/health")).stdout)
            .contains("\"health\":\"true\"")
            .then_some(())
    });
    let plain = curl(&[format!("http://127.0.0.1:{c2}/health")]);
    assert!(
        text(&plain.stdout).contains("\"health\":\"true\""),
        "{}",
        text(&plain.stderr)
    );
    let metrics = with_cert(format!("https://127.0.0.1:{m}/metrics"));
    assert!(
        text(&metrics.stdout).contains("etcd_server_has_leader"),
        "{}",
        text(&metrics.stderr)
    );
    let no_cert = curl(&[
        "--cacert".into(),
        path(&tls.ca),
        format!("https://127.0.0.1:{m}/metrics"),
    ]);
    assert!(
        !no_cert.status.success(),
        "metrics without a client certificate"
    );
}

#[test]
fn cipher_suites_and_max_version_are_in_force() {
    let mut pki = Pki::new("ca");
    let tls = pki.server_tls(false);
    let (mut args, [c, _, _]) = member_args("https://127.0.0.1:{c}");
    args.extend(tls_args(&tls));
    args.extend([
        "--cipher-suites".into(),
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
        "--tls-max-version".into(),
        "TLS1.2".into(),
    ]);
    let _p = Proc::start(&args);
    let url = format!("https://127.0.0.1:{c}/health");
    let with = |extra: &[&str]| {
        let mut a = tls.curl_args();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(url.clone());
        curl(&a)
    };
    wait::until(
        Duration::from_secs(20),
        "cairn to serve with the chosen suite",
        || {
            text(&with(&["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]).stdout)
                .contains("health")
                .then_some(())
        },
    );
    let other_suite = with(&[
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ]);
    assert!(
        !other_suite.status.success(),
        "a suite not in --cipher-suites was accepted"
    );
    let tls13 = with(&["--tlsv1.3"]);
    assert!(
        !tls13.status.success(),
        "TLS 1.3 accepted above --tls-max-version TLS1.2"
    );
}
