//! A real S3 server for the backup tests: moto's `moto_server` (PyPI's `moto[server]`, which
//! `.ci/run` installs into a virtualenv and puts on `PATH`), started on a free loopback port,
//! one per test, in memory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http;
use crate::ports::free_port;
use crate::wait::until;

pub struct S3Server {
    child: Child,
    pub addr: String,
}

/// Where `moto_server` is: `CAIRN_MOTO_SERVER`, else the first on `PATH`.
fn moto_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("moto_server"))
        .find(|p| p.exists())
}

impl S3Server {
    /// Starts one, or `None` (a note on stderr) when moto is not installed outside CI; in CI
    /// (`CI=true`) its absence is a setup bug, so this panics.
    pub fn start() -> Option<S3Server> {
        let Some(bin) = moto_server() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("moto_server not found: .ci/run must install moto[server]");
            }
            eprintln!("skipping: moto_server missing (pip install 'moto[server]')");
            return None;
        };
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let addr = format!("127.0.0.1:{port}");
        let s = S3Server { child, addr };
        until(Duration::from_secs(30), "moto_server to answer", || {
            http::get(&s.addr, "/").map(|_| ())
        });
        Some(s)
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn bucket(&self, name: &str) {
        let got = http::request(&self.addr, "PUT", &format!("/{name}"));
        assert!(
            got.as_ref().is_some_and(|(code, _)| *code == 200),
            "create bucket {name}: {got:?}"
        );
    }

    /// The environment a client of this server needs (object_store's AWS_* variables).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://{}", self.addr)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Stops answering (SIGSTOP) until [`S3Server::resume`]: an unreachable store that keeps
    /// its data.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} moto_server");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
