//! `cairnutl make-mirror` as a background process for the mirror tests: its `-w json` event
//! lines are read from a file and awaited with a deadline; prefix contents of either side
//! are read over gRPC and compared after the prefix rewrite.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cairn_proto::etcdserverpb::RangeRequest;
use tempfile::TempDir;

use crate::pki::ServerTls;
use crate::{binaries, grpc, wait};

/// A running `cairnutl make-mirror ... -w json`, killed on drop.
pub struct Mirror {
    child: Option<Child>,
    dir: TempDir,
    args: Vec<String>,
    runs: usize,
}

impl Mirror {
    /// Starts `cairnutl --endpoints <source> make-mirror <dest> <args> -w json`.
    pub fn start(source: &str, dest: &str, args: &[&str]) -> Self {
        let mut all = vec![
            "--endpoints".to_string(),
            source.to_string(),
            "make-mirror".to_string(),
            dest.to_string(),
            "-w".to_string(),
            "json".to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let mut m = Mirror {
            child: None,
            dir: tempfile::Builder::new()
                .prefix("cairn-mirror-")
                .tempdir()
                .expect("tempdir"),
            args: all,
            runs: 0,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let out = File::create(self.stdout_path()).expect("create mirror stdout");
        let err = File::create(self.dir.path().join(format!("stderr.{}", self.runs)))
            .expect("create mirror stderr");
        let child = Command::new(binaries::cairnutl_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn cairnutl make-mirror");
        self.child = Some(child);
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join(format!("stdout.{}", self.runs))
    }

    /// The JSON event lines of the current run.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.stdout_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Events of the current run other than the periodic status.
    pub fn notable(&self) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] != "status")
            .collect()
    }

    /// Waits for an event named `name` in the current run and returns it.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> serde_json::Value {
        let what = format!("mirror event {name:?}");
        wait::until(timeout, &what, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "mirror exited ({status}) before {name:?}; events: {:?}; stderr: {}",
                    self.notable(),
                    self.stderr()
                );
            }
            self.events().into_iter().find(|e| e["event"] == name)
        })
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("stderr.{}", self.runs)))
            .unwrap_or_default()
    }

    /// SIGKILL: no chance to finish a txn or give the prefix back.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("mirror is running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        wait::until(Duration::from_secs(20), "mirror exit after SIGTERM", || {
            c.try_wait().expect("try_wait")
        })
    }

    /// Starts it again with the same flags (a new run: new event file).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Waits for the process to exit by itself; returns its status and stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let c = self.child.as_mut().expect("mirror is running");
        let status = wait::until(timeout, "mirror to exit", || {
            c.try_wait().expect("try_wait")
        });
        self.child = None;
        (status, self.stderr())
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- mirror events ---\n{:?}\n--- mirror stderr ---\n{}",
                self.notable(),
                self.stderr()
            );
        }
        self.kill9();
    }
}

/// (key, value, has a lease) of every key in `[prefix)`, with `prefix` replaced by `as_prefix`
/// and the mirrors' reserved keys left out, read at the latest revision.
pub fn contents(endpoint: &str, prefix: &str, as_prefix: &str) -> Vec<(String, String, bool)> {
    contents_tls(endpoint, None, prefix, as_prefix)
}

/// [`contents`] over TLS when `tls` is given.
pub fn contents_tls(
    endpoint: &str,
    tls: Option<&ServerTls>,
    prefix: &str,
    as_prefix: &str,
) -> Vec<(String, String, bool)> {
    let endpoint = endpoint.to_string();
    let (key, range_end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("non-empty") += 1;
        (prefix.as_bytes().to_vec(), end)
    };
    let r = grpc::block_on(async move {
        let mut c = grpc::Clients::connect_tls(&endpoint, tls).await?;
        let r =
            c.kv.range(RangeRequest {
                key,
                range_end,
                ..Default::default()
            })
            .await?;
        anyhow::Ok(r.into_inner())
    })
    .expect("range");
    r.kvs
        .into_iter()
        .filter(|kv| !kv.key.starts_with(b"__cairn_mirror__/"))
        .map(|kv| {
            let k = String::from_utf8_lossy(&kv.key).into_owned();
            let k = format!("{as_prefix}{}", &k[prefix.len()..]);
            (
                k,
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.lease != 0,
            )
        })
        .collect()
}

/// Waits until the destination's `dest_prefix` holds exactly the source's `prefix`.
pub fn wait_equal(source: &str, prefix: &str, dest: &str, dest_prefix: &str, timeout: Duration) {
    wait_equal_tls((source, None), prefix, (dest, None), dest_prefix, timeout)
}

/// [`wait_equal`] with each side's endpoint and TLS setup.
pub fn wait_equal_tls(
    (source, source_tls): (&str, Option<&ServerTls>),
    prefix: &str,
    (dest, dest_tls): (&str, Option<&ServerTls>),
    dest_prefix: &str,
    timeout: Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    let last = loop {
        let s = contents_tls(source, source_tls, prefix, dest_prefix);
        let d = contents_tls(dest, dest_tls, dest_prefix, dest_prefix);
        if s == d {
            return;
        }
        if std::time::Instant::now() >= deadline {
            break (s, d);
        }
        std::thread::sleep(wait::POLL * 4);
    };
    {
        let (s, d) = &last;
        let missing: Vec<_> = s.iter().filter(|x| !d.contains(x)).take(5).collect();
        let extra: Vec<_> = d.iter().filter(|x| !s.contains(x)).take(5).collect();
        panic!(
            "destination never equal to source within {timeout:?}: {} vs {} keys; missing {missing:?}; extra {extra:?}",
            s.len(),
            d.len()
        );
    }
}

/// Runs `cairnutl --endpoints <source> make-mirror <dest> --check <args>` to completion.
pub fn check(source: &str, dest: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(binaries::cairnutl_bin());
    cmd.args(["--endpoints", source, "make-mirror", dest, "--check"])
        .args(args);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairnutl make-mirror --check");
    child.wait_with_output().expect("wait for --check")
}
