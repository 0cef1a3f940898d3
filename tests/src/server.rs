//! Servers of either kind, started as real processes on loopback: one-member clusters, or
//! members of a bigger cluster (`crate::cluster`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pki::ServerTls;
use crate::{binaries, grpc, ports, wait};

/// How long a server may take to start answering `Status` with a leader.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with fresh ports when another process took ours first.
const PORT_ATTEMPTS: usize = 5;

/// Which server implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// This project's `cairn` binary.
    Cairn,
    /// Real etcd 3.4 from `/usr/bin/etcd`, the oracle.
    Etcd,
}

impl Kind {
    fn binary(self) -> PathBuf {
        match self {
            Kind::Cairn => binaries::cairn_bin(),
            Kind::Etcd => PathBuf::from(binaries::ETCD),
        }
    }
}

/// A running single-member server with its own ports and temporary data dir.
///
/// Dropping it kills the process; if the test is panicking, the log tail is printed first.
pub struct TestServer {
    kind: Kind,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    /// The peer port advertised instead of `peer_port` (a proxy's), if any.
    advertised_peer_port: Option<u16>,
    /// `--name`: `s1` unless started with [`TestServer::start_prepared`].
    name: String,
    /// `--initial-cluster` for a member of a multi-member cluster (`None`: just this one).
    initial_cluster: Option<String>,
    extra_args: Vec<String>,
    /// TLS on the client (and maybe peer) listener; the harness dials with its client cert.
    tls: Option<ServerTls>,
    child: Option<Child>,
    /// The group the process runs as (root only): lets a test's firewall rules pick out
    /// this member's packets (see `robustness::partitions`).
    group: Option<u32>,
    /// Set once a panic message already carried the log tail.
    log_reported: bool,
}

enum StartError {
    AddrInUse,
    Failed(String),
}

impl TestServer {
    /// Starts a fresh server of `kind` and waits until it is ready.
    pub fn start(kind: Kind) -> Self {
        Self::start_with(kind, &[])
    }

    /// Like [`TestServer::start`], with extra flags appended to the standard ones.
    pub fn start_with(kind: Kind, extra_args: &[&str]) -> Self {
        Self::start_prepared(kind, "s1", extra_args, |_, _| {})
    }

    /// Like [`TestServer::start_with`], with TLS on the client listener (and on the peer
    /// listener when `tls.peer`), client certificates required.
    pub fn start_tls(kind: Kind, tls: &ServerTls, extra_args: &[&str]) -> Self {
        Self::start_inner(kind, "s1", Some(tls), extra_args, |_, _| {})
    }

    /// Starts member `name` on a data dir that `prepare(data_dir, peer_url)` fills first, e.g.
    /// with `cairnutl snapshot restore`. It runs once per attempt, after the ports are picked,
    /// because a restore bakes the peer URL into the member ID; the server gets
    /// `--initial-cluster <name>=<peer_url>` as usual (a restored data dir ignores it).
    pub fn start_prepared(
        kind: Kind,
        name: &str,
        extra_args: &[&str],
        prepare: impl FnMut(&Path, &str),
    ) -> Self {
        Self::start_inner(kind, name, None, extra_args, prepare)
    }

    /// A one-member Cairn named `restored`, started on what `cairnutl snapshot restore ARGS`
    /// (with `env` added) made: its name, data dir and peer URL are added to `args`. The
    /// restore must succeed.
    pub fn start_restored(args: &[&str], env: &[(&str, String)]) -> Self {
        Self::start_prepared(Kind::Cairn, "restored", &[], |dir, peer| {
            let out = Command::new(binaries::cairnutl_bin())
                .env_remove("ETCDCTL_ENDPOINTS")
                .env_remove("ETCD_DATA_DIR")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .args(["snapshot", "restore"])
                .args(args)
                .args(["--name", "restored", "--initial-cluster"])
                .arg(format!("restored={peer}"))
                .args(["--initial-advertise-peer-urls", peer, "--data-dir"])
                .arg(dir)
                .output()
                .expect("run cairnutl");
            assert!(
                out.status.success(),
                "cairnutl snapshot restore {args:?}: {}",
                binaries::output_text(&out)
            );
        })
    }

    fn start_inner(
        kind: Kind,
        name: &str,
        tls: Option<&ServerTls>,
        extra_args: &[&str],
        mut prepare: impl FnMut(&Path, &str),
    ) -> Self {
        for _ in 0..PORT_ATTEMPTS {
            let extra: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
            let mut server =
                TestServer::unstarted(kind, name, ports::free_port_pair(), None, &extra);
            server.tls = tls.cloned();
            prepare(&server.data_dir(), &server.peer_url());
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::AddrInUse) => continue,
                Err(StartError::Failed(why)) => server.fail(&why),
            }
        }
        panic!("{kind:?}: ports kept colliding after {PORT_ATTEMPTS} attempts");
    }

    /// A member of a multi-member cluster on the given ports, not started yet: [`launch`]
    /// starts it, [`wait_ready`] waits until it sees a leader (see `crate::cluster`).
    ///
    /// [`launch`]: TestServer::launch
    /// [`wait_ready`]: TestServer::wait_ready
    pub fn cluster_member(
        kind: Kind,
        name: &str,
        (client_port, peer_port): (u16, u16),
        initial_cluster: &str,
        extra_args: &[String],
        tls: Option<&ServerTls>,
    ) -> Self {
        let ports = (client_port, peer_port);
        let mut m = TestServer::unstarted(kind, name, ports, Some(initial_cluster), extra_args);
        m.tls = tls.cloned();
        m
    }

    fn unstarted(
        kind: Kind,
        name: &str,
        (client_port, peer_port): (u16, u16),
        initial_cluster: Option<&str>,
        extra_args: &[String],
    ) -> Self {
        TestServer {
            kind,
            dir: tempfile::Builder::new()
                .prefix("cairn-test-")
                .tempdir()
                .expect("tempdir"),
            client_port,
            peer_port,
            advertised_peer_port: None,
            name: name.to_string(),
            initial_cluster: initial_cluster.map(String::from),
            extra_args: extra_args.to_vec(),
            tls: None,
            child: None,
            group: None,
            log_reported: false,
        }
    }

    /// Starts the process without waiting for it to be ready.
    pub fn launch(&mut self) {
        if let Err(why) = self.spawn() {
            self.fail(&why);
        }
    }

    /// Waits until the server answers `Status` with a leader; panics with the log tail if it
    /// exits or takes longer than [`START_TIMEOUT`].
    pub fn wait_ready(&mut self) {
        match self.wait_leader() {
            Ok(()) => {}
            Err(StartError::AddrInUse) => self.fail("address already in use"),
            Err(StartError::Failed(why)) => self.fail(&why),
        }
    }

    /// Waits for the process to exit by itself (e.g. a removed member); `None` after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut()?.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(wait::POLL);
        }
    }

    /// Changes `--initial-cluster` for the next start (a member with data ignores it).
    pub fn set_initial_cluster(&mut self, initial_cluster: &str) {
        self.initial_cluster = Some(initial_cluster.to_string());
    }

    /// The flags appended to the standard ones, to change before the next start.
    pub fn extra_args_mut(&mut self) -> &mut Vec<String> {
        &mut self.extra_args
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The gRPC endpoint as etcdctl takes it: `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The client URL: `http://127.0.0.1:<port>` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The peer URL the member advertises (the one in the membership):
    /// `http://127.0.0.1:<peer port>` (`https://` with peer TLS), or the port of a proxy in
    /// front of it (see [`TestServer::advertise_peer_port`]).
    pub fn peer_url(&self) -> String {
        self.peer_url_on(self.advertised_peer_port.unwrap_or(self.peer_port))
    }

    /// The peer URL the member listens on.
    fn listen_peer_url(&self) -> String {
        self.peer_url_on(self.peer_port)
    }

    fn peer_url_on(&self, port: u16) -> String {
        let scheme = if self.tls.as_ref().is_some_and(|t| t.peer) {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// Makes the member advertise `port` (a proxy's, forwarding to its peer port) instead
    /// of its own peer port, from its next start.
    pub fn advertise_peer_port(&mut self, port: u16) {
        self.advertised_peer_port = Some(port);
    }

    /// Changes the TLS setup for the next start.
    pub fn set_tls(&mut self, tls: ServerTls) {
        self.tls = Some(tls);
    }

    /// The TLS setup, if the server runs with one.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// What etcdctl and cairnutl need to reach this server: `--endpoints=<url>` and, with
    /// TLS, `--cacert --cert --key`.
    pub fn client_args(&self) -> Vec<String> {
        let mut a = vec![format!("--endpoints={}", self.url())];
        if let Some(t) = &self.tls {
            a.extend(t.client_args());
        }
        a
    }

    /// `Maintenance/Status`, over TLS when the server has it.
    pub fn status(
        &self,
        timeout: Duration,
    ) -> anyhow::Result<cairn_proto::etcdserverpb::StatusResponse> {
        grpc::status_blocking_tls(&self.endpoint(), self.tls.as_ref(), timeout)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Combined stdout and stderr of every run of this server.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Kills the process with SIGKILL (no chance to flush) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs the process as group `gid` from its next start (the caller must be root).
    pub fn set_group(&mut self, gid: u32) {
        self.group = Some(gid);
    }

    /// The port its peer listener is on.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// Freezes the process (SIGSTOP) until [`TestServer::resume`]: a member that stops
    /// answering without losing anything, as a stalled machine does.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {}", child.id());
        }
    }

    /// Sends SIGTERM and waits for the exit; panics (after SIGKILL) if it takes too long.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.fail(&format!("did not exit within {STOP_TIMEOUT:?} of SIGTERM"));
            }
            std::thread::sleep(wait::POLL);
        }
    }

    /// Starts the server again on the same data dir and ports and waits until it is ready.
    /// A still-running process is killed with SIGKILL first.
    pub fn restart(&mut self) {
        self.kill9();
        match self.spawn_and_wait() {
            Ok(()) => {}
            Err(StartError::AddrInUse) => self.fail("restart: our ports were taken meanwhile"),
            Err(StartError::Failed(why)) => self.fail(&format!("restart: {why}")),
        }
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn fail(&mut self, why: &str) -> ! {
        self.kill9();
        self.log_reported = true;
        panic!(
            "{:?} server on {}: {why}\n--- log tail ({}) ---\n{}",
            self.kind,
            self.endpoint(),
            self.log_path().display(),
            self.log_tail(60)
        );
    }

    fn args(&self) -> Vec<String> {
        let client = self.url();
        let peer = self.peer_url();
        let mut args = vec![
            "--name".into(),
            self.name.clone(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            self.listen_peer_url(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            self.initial_cluster
                .clone()
                .unwrap_or_else(|| format!("{}={peer}", self.name)),
        ];
        if let Some(t) = &self.tls {
            args.extend(t.server_args());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        self.spawn().map_err(StartError::Failed)?;
        self.wait_leader()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let args = self.args();
        writeln!(log, "=== {:?} {}", self.kind, args.join(" ")).expect("write server log");
        let stderr: File = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(self.kind.binary());
        if let Some(gid) = self.group {
            use std::os::unix::process::CommandExt;
            cmd.gid(gid);
        }
        let child = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {:?}: {e}", self.kind.binary()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Ready = the client port accepts TCP and `Maintenance/Status` reports a leader, which is
    /// when a member can serve linearizable reads and writes.
    fn wait_leader(&mut self) -> Result<(), StartError> {
        let addr: SocketAddr = self.endpoint().parse().expect("socket address");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_error = String::from("never reached the client port");
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("child")
                .try_wait()
                .expect("try_wait");
            if let Some(status) = exited {
                self.child = None;
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let lower = log.to_lowercase();
                if lower.contains("address already in use") || lower.contains("address in use") {
                    return Err(StartError::AddrInUse);
                }
                return Err(StartError::Failed(format!(
                    "exited during startup: {status}"
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                match self.status(Duration::from_secs(2)) {
                    Ok(status) if status.leader != 0 => return Ok(()),
                    Ok(_) => last_error = "Status answered without a leader".into(),
                    Err(e) => last_error = format!("Status failed: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "not ready within {START_TIMEOUT:?}: {last_error}"
                )));
            }
            std::thread::sleep(wait::POLL);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_reported {
            eprintln!(
                "--- {:?} server {} log tail ({}) ---\n{}",
                self.kind,
                self.endpoint(),
                self.log_path().display(),
                self.log_tail(40)
            );
        }
        self.kill9();
        // CAIRN_KEEP_LOGS=DIR keeps every server's log (a robustness run to study)
        if let Ok(dir) = std::env::var("CAIRN_KEEP_LOGS") {
            let to = Path::new(&dir).join(format!("{}-{}.log", self.name, self.client_port));
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(self.log_path(), to);
        }
    }
}
