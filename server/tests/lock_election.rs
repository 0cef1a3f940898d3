//! The Lock and Election services against a real `cairn` process on loopback, plus real
//! etcdctl's client-side `lock` and `elect` (which use KV, Lease and Watch) against the same
//! server. Expected codes and messages are etcd 3.4's, checked against a real etcd.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::lease_client::LeaseClient;
use cairn_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseRevokeRequest, RangeRequest, StatusRequest,
};
use cairn_proto::v3electionpb::election_client::ElectionClient;
use cairn_proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
};
use cairn_proto::v3lockpb::lock_client::LockClient;
use cairn_proto::v3lockpb::{LockRequest, UnlockRequest};
use tonic::Code;
use tonic::transport::Channel;

/// Generous bound for anything that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);
/// How long a call must stay pending to count as blocked.
const BLOCKED: Duration = Duration::from_millis(300);
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// A one-member `cairn` on free loopback ports with a temporary data dir; killed on drop.
struct Server {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (free_port(), free_port());
        let (client_url, peer_url) = (
            format!("http://127.0.0.1:{client}"),
            format!("http://127.0.0.1:{peer}"),
        );
        let data_dir = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cairn");
        let mut server = Server {
            child,
            endpoint: format!("127.0.0.1:{client}"),
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    /// Ready = `Maintenance/Status` names a leader.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(ch) = self.try_channel().await {
                let status = MaintenanceClient::new(ch).status(StatusRequest {}).await;
                if status.is_ok_and(|s| s.into_inner().leader != 0) {
                    return;
                }
            }
            let exited = self.child.try_wait().expect("try_wait");
            assert!(exited.is_none(), "cairn exited during startup: {exited:?}");
            assert!(Instant::now() < deadline, "cairn not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn try_channel(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(format!("http://{}", self.endpoint))
            .expect("endpoint uri")
            .timeout(Duration::from_secs(30))
            .connect()
            .await
    }

    async fn channel(&self) -> Channel {
        self.try_channel().await.expect("connect to cairn")
    }

    async fn lock(&self) -> LockClient<Channel> {
        LockClient::new(self.channel().await)
    }

    async fn election(&self) -> ElectionClient<Channel> {
        ElectionClient::new(self.channel().await)
    }

    async fn grant(&self) -> i64 {
        let mut lease = LeaseClient::new(self.channel().await);
        let req = LeaseGrantRequest { ttl: 30, id: 0 };
        lease.lease_grant(req).await.expect("grant").into_inner().id
    }

    /// How many keys start with `prefix`.
    async fn count(&self, prefix: &str) -> i64 {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("non-empty prefix") += 1;
        let req = RangeRequest {
            key: prefix.into(),
            range_end: end,
            count_only: true,
            ..Default::default()
        };
        let mut kv = KvClient::new(self.channel().await);
        kv.range(req).await.expect("range").into_inner().count
    }

    /// Waits until `count(prefix) == n`.
    async fn wait_count(&self, prefix: &str, n: i64) {
        let deadline = Instant::now() + WAIT;
        while self.count(prefix).await != n {
            assert!(Instant::now() < deadline, "never {n} keys under {prefix}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn assert_etcd_error(s: tonic::Status, message: &str) {
    assert_eq!((s.code(), s.message()), (Code::Unknown, message), "{s:?}");
}

/// Waits for a spawned call, which must finish within `WAIT`.
async fn finish<T>(h: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(WAIT, h)
        .await
        .expect("call still pending")
        .expect("task panicked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_lock_waits_for_unlock() {
    let s = Server::start().await;
    let (l1, l2) = (s.grant().await, s.grant().await);
    let mut lock = s.lock().await;
    let first = lock.lock(lock_req("foo", l1)).await.unwrap().into_inner();
    assert_eq!(first.key, format!("foo/{l1:x}").into_bytes());

    let mut waiter = s.lock().await;
    let mut second = tokio::spawn(async move { waiter.lock(lock_req("foo", l2)).await });
    s.wait_count("foo/", 2).await; // the waiter has queued
    let pending = tokio::time::timeout(BLOCKED, &mut second).await;
    assert!(
        pending.is_err(),
        "second lock returned while the first held it"
    );

    lock.unlock(UnlockRequest { key: first.key }).await.unwrap();
    let second = finish(second).await.unwrap().into_inner();
    assert_eq!(second.key, format!("foo/{l2:x}").into_bytes());
    let rev = |h: Option<_>| h.map_or(0, |h: cairn_proto::etcdserverpb::ResponseHeader| h.revision);
    assert!(rev(second.header) > rev(first.header));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_with_missing_lease_fails() {
    let s = Server::start().await;
    let err = s
        .lock()
        .await
        .lock(lock_req("foo", 0x1234))
        .await
        .unwrap_err();
    assert_etcd_error(err, "etcdserver: requested lease not found");
    assert_eq!(s.count("foo/").await, 0);
    // lease 0: etcd's session grants a lease for the key
    let got = s
        .lock()
        .await
        .lock(lock_req("foo", 0))
        .await
        .unwrap()
        .into_inner();
    assert!(got.key.starts_with(b"foo/") && got.key.len() > 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_holder_lease_releases_waiter() {
    let s = Server::start().await;
    let (l1, l2) = (s.grant().await, s.grant().await);
    s.lock().await.lock(lock_req("foo", l1)).await.unwrap();
    let mut waiter = s.lock().await;
    let mut second = tokio::spawn(async move { waiter.lock(lock_req("foo", l2)).await });
    s.wait_count("foo/", 2).await;
    assert!(tokio::time::timeout(BLOCKED, &mut second).await.is_err());

    let mut lease = LeaseClient::new(s.channel().await);
    lease
        .lease_revoke(LeaseRevokeRequest { id: l1 })
        .await
        .unwrap();
    let got = finish(second).await.unwrap().into_inner();
    assert_eq!(got.key, format!("foo/{l2:x}").into_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_waiter_removes_its_key() {
    let s = Server::start().await;
    let (l1, l2) = (s.grant().await, s.grant().await);
    s.lock().await.lock(lock_req("foo", l1)).await.unwrap();
    let mut waiter = s.lock().await;
    let call = waiter.lock(lock_req("foo", l2));
    // dropping the call resets the stream: the server sees the client go away
    assert!(tokio::time::timeout(BLOCKED, call).await.is_err());
    s.wait_count("foo/", 1).await; // etcd's Mutex deletes a cancelled waiter's key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_round_trip() {
    let s = Server::start().await;
    let mut e = s.election().await;
    let err = e.leader(leader_req("el")).await.unwrap_err();
    assert_etcd_error(err, "election: no leader");

    let (l1, l2) = (s.grant().await, s.grant().await);
    let c1 = e
        .campaign(campaign("el", l1, "a1"))
        .await
        .unwrap()
        .into_inner();
    let k1 = c1.leader.unwrap();
    assert_eq!(
        (k1.key.clone(), k1.lease),
        (format!("el/{l1:x}").into_bytes(), l1)
    );
    let mut observed = e.observe(leader_req("el")).await.unwrap().into_inner();
    let mut next_value = async || {
        let msg = tokio::time::timeout(WAIT, observed.message()).await;
        let kv = msg
            .expect("observe timed out")
            .unwrap()
            .unwrap()
            .kv
            .unwrap();
        String::from_utf8(kv.value).unwrap()
    };
    assert_eq!(next_value().await, "a1");

    e.proclaim(proclaim(&k1, "a2")).await.unwrap();
    assert_eq!(next_value().await, "a2");
    let leader = e.leader(leader_req("el")).await.unwrap().into_inner();
    assert_eq!(leader.kv.unwrap().value, b"a2");

    let mut e2 = s.election().await;
    let mut c2 = tokio::spawn(async move { e2.campaign(campaign("el", l2, "b1")).await });
    s.wait_count("el/", 2).await;
    assert!(tokio::time::timeout(BLOCKED, &mut c2).await.is_err());

    e.resign(ResignRequest {
        leader: Some(k1.clone()),
    })
    .await
    .unwrap();
    let k2 = finish(c2).await.unwrap().into_inner().leader.unwrap();
    assert_eq!(k2.key, format!("el/{l2:x}").into_bytes());
    assert_eq!(next_value().await, "b1");

    // the old leader's key is gone: it may no longer proclaim
    let err = e.proclaim(proclaim(&k1, "a3")).await.unwrap_err();
    assert_etcd_error(err, "election: not leader");
    let missing = ProclaimRequest {
        leader: None,
        value: b"x".to_vec(),
    };
    let err = e.proclaim(missing).await.unwrap_err();
    assert_etcd_error(err, "\"leader\" field must be provided");
}

/// etcdctl's client-side mutex and election interoperate with the server-side services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lock_and_elect() {
    if !Path::new(ETCDCTL).exists() {
        eprintln!("skipping: {ETCDCTL} not installed");
        return;
    }
    let s = Server::start().await;
    let out = etcdctl(&s, &["lock", "m", "--", "echo", "hi"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");

    // etcdctl holds the lock; a Lock call waits until etcdctl releases it on SIGTERM
    let mut holder = Lines::spawn(etcdctl(&s, &["lock", "m"]));
    assert!(holder.next().starts_with("m/"));
    let lease = s.grant().await;
    let mut lock = s.lock().await;
    let mut mine = tokio::spawn(async move { lock.lock(lock_req("m", lease)).await });
    s.wait_count("m/", 2).await;
    assert!(tokio::time::timeout(BLOCKED, &mut mine).await.is_err());
    holder.terminate();
    finish(mine).await.unwrap();

    // etcdctl campaigns; the Election service reports it as leader
    let mut candidate = Lines::spawn(etcdctl(&s, &["elect", "e", "p1"]));
    assert!(candidate.next().starts_with("e/"));
    assert_eq!(candidate.next(), "p1");
    let leader = s.election().await.leader(leader_req("e")).await.unwrap();
    assert_eq!(leader.into_inner().kv.unwrap().value, b"p1");
}

fn etcdctl(s: &Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(ETCDCTL);
    cmd.env("ETCDCTL_API", "3")
        .args(["--endpoints", &s.endpoint, "--command-timeout=10s"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A background etcdctl whose stdout lines are read with a deadline; killed on drop.
struct Lines {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn etcdctl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines { child, rx }
    }

    fn next(&mut self) -> String {
        self.rx.recv_timeout(WAIT).expect("etcdctl printed nothing")
    }

    /// SIGTERM: etcdctl unlocks (or resigns) before exiting.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock_req(name: &str, lease: i64) -> LockRequest {
    LockRequest {
        name: name.into(),
        lease,
    }
}

fn leader_req(name: &str) -> LeaderRequest {
    LeaderRequest { name: name.into() }
}

fn campaign(name: &str, lease: i64, value: &str) -> CampaignRequest {
    CampaignRequest {
        name: name.into(),
        lease,
        value: value.into(),
    }
}

fn proclaim(leader: &LeaderKey, value: &str) -> ProclaimRequest {
    ProclaimRequest {
        leader: Some(leader.clone()),
        value: value.into(),
    }
}
