//! etcd's JSON gateway driven with real curl, and its answers made comparable between etcd and
//! Cairn: the member-level header fields and the IDs a server draws are replaced by
//! placeholders, everything else is compared as it is.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What curl got: the HTTP status and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// `curl -X POST <base><path> --data-binary @-` with `body` on its stdin (a body of megabytes
/// does not fit in an argument) and `extra` arguments (headers, TLS files).
pub fn post(base: &str, path: &str, body: &str, extra: &[String]) -> Reply {
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-X",
            "POST",
            "-w",
            "\n%{http_code}",
        ])
        .args(extra)
        .args(["--data-binary", "@-"])
        .arg(format!("{base}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl (Debian's curl package)");
    let mut stdin = child.stdin.take().expect("curl's stdin");
    let body = body.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().expect("curl's output");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    Reply {
        status: code.trim().parse().expect("an HTTP status"),
        body: body.to_string(),
    }
}

/// A streaming call left open (`curl -N`): its chunks, one JSON line each, read with a
/// deadline.
pub struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    pub fn open(base: &str, path: &str, body: &str, extra: &[String]) -> Stream {
        let mut child = Command::new("curl")
            .args(["-sS", "-N", "-X", "POST"])
            .args(extra)
            .arg("--data-binary")
            .arg(body)
            .arg(format!("{base}{path}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run curl");
        let out: ChildStdout = child.stdout.take().expect("curl's stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stream { child, lines }
    }

    /// The next chunk, within `timeout`; `None` if none came (or the stream ended).
    pub fn next(&self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if !line.trim().is_empty() {
                return Some(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("a chunk that is not JSON ({e}): {line:?}")),
                );
            }
        }
    }

    /// Whether the server ended the stream within `timeout`.
    pub fn ended(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `v` with what differs between two servers given the same requests replaced: in every
/// `header`, `cluster_id`, `member_id` and `raft_term`; and the value of every key in `ids`
/// (lease and member IDs, say) anywhere in it.
pub fn normalized(v: &Value, ids: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = if k == "header" {
                        header(x)
                    } else if ids.contains(&k.as_str()) {
                        Value::String("<id>".into())
                    } else {
                        normalized(x, ids)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalized(x, ids)).collect()),
        other => other.clone(),
    }
}

fn header(h: &Value) -> Value {
    let mut h = h.clone();
    if let Some(m) = h.as_object_mut() {
        for k in ["cluster_id", "member_id", "raft_term"] {
            m.remove(k);
        }
    }
    h
}
