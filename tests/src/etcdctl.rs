//! Running real etcdctl (API v3) against a server, always with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{binaries, wait};

/// Upper bound for one short etcdctl command.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// `etcdctl --endpoints=<endpoint>` with `ETCDCTL_API=3` and no inherited `ETCDCTL_*` settings.
pub fn command(endpoint: &str) -> Command {
    let mut cmd = Command::new(binaries::ETCDCTL);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"));
    cmd
}

/// Runs `etcdctl --endpoints=<endpoint> <args>`; panics only on timeout.
pub fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = command(endpoint);
    cmd.args(args);
    run(cmd, None, &describe(args))
}

/// Like [`etcdctl()`], feeding `stdin` (e.g. a `txn` script).
pub fn etcdctl_stdin(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut cmd = command(endpoint);
    cmd.args(args);
    run(cmd, Some(stdin), &describe(args))
}

/// Runs etcdctl, asserts it succeeded, returns its stdout.
pub fn etcdctl_ok(endpoint: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoint, args);
    assert_success(&out, &describe(args));
    String::from_utf8(out.stdout).expect("etcdctl stdout is UTF-8")
}

/// Runs etcdctl, asserts it failed, returns its stderr.
pub fn etcdctl_err(endpoint: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoint, args);
    assert!(
        !out.status.success(),
        "{} unexpectedly succeeded; stdout:\n{}",
        describe(args),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("etcdctl stderr is UTF-8")
}

/// Runs etcdctl with `-w json`, asserts success, parses stdout.
pub fn etcdctl_json(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-w", "json"];
    full.extend_from_slice(args);
    parse_json(&etcdctl_ok(endpoint, &full), &describe(&full))
}

/// Parses etcdctl's JSON output, naming the command on failure.
pub fn parse_json(stdout: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}):\n{stdout}"))
}

/// Panics with both output streams unless the command exited 0.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn describe(args: &[&str]) -> String {
    format!("etcdctl {}", args.join(" "))
}

/// Drains a pipe on its own thread so a chatty child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Like [`etcdctl()`], for long commands (`check perf`): panics after `timeout`.
pub fn etcdctl_within(endpoint: &str, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = command(endpoint);
    cmd.args(args);
    run_within(cmd, None, &describe(args), timeout)
}

fn run(cmd: Command, stdin: Option<&str>, what: &str) -> Output {
    run_within(cmd, stdin, what, TIMEOUT)
}

fn run_within(mut cmd: Command, stdin: Option<&str>, what: &str, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes())
            .expect("write etcdctl stdin");
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(wait::POLL);
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A long-running command (`etcdctl watch`, `lock`, `elect`) whose stdout lines are collected
/// as they arrive. Dropping it kills the process.
pub struct Background {
    what: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Background {
    /// Starts `etcdctl --endpoints=<endpoint> <args>` in the background.
    pub fn etcdctl(endpoint: &str, args: &[&str]) -> Self {
        let mut cmd = command(endpoint);
        cmd.args(args);
        Self::spawn(cmd, describe(args))
    }

    /// Starts any command in the background, collecting its stdout lines.
    pub fn spawn(mut cmd: Command, what: String) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Some(drain(child.stderr.take().expect("piped stderr")));
        Background {
            what,
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Every stdout line received so far.
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    /// Waits until at least `n` lines arrived; returns all lines so far.
    pub fn wait_lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_for(timeout, &format!("{n} lines"), |lines| lines.len() >= n)
    }

    /// Waits until `done(lines so far)` holds; returns all lines so far.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting for {what}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("stdout closed while waiting for {what}"))
                }
            }
        }
        self.seen.clone()
    }

    /// Waits for the process to exit by itself within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect whatever stdout is still buffered in the channel.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                self.fail("timed out waiting for exit");
            }
            std::thread::sleep(wait::POLL);
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGTERM (etcdctl `lock` unlocks and `elect` resigns on it).
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// Everything the process wrote to stderr; call after it exited.
    pub fn stderr(&mut self) -> String {
        let bytes = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        panic!(
            "{}: {why}\nstdout so far:\n{}\nstderr:\n{}",
            self.what,
            self.seen.join("\n"),
            String::from_utf8_lossy(&stderr)
        );
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}
