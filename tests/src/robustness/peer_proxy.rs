//! Delays on the peer network, made by a TCP proxy in front of each member's peer port, as
//! etcd's robustness tests do (their `DelayPeerNetwork` failpoint): the members advertise the
//! proxy's port, so every connection to a member — the raft messages, votes, snapshots and
//! their answers — passes through its proxy, which can hold each chunk for a while before
//! passing it on. Order is kept (a chunk never overtakes the one before it) and throughput is
//! not limited: a delay is latency, as on a slow link, not a stall. Plain threads, no root.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::prng::Rng;

/// The delay a proxy adds now: `base` plus up to `spread` more, drawn per chunk.
#[derive(Default)]
struct Latency {
    base_us: AtomicU64,
    spread_us: AtomicU64,
}

/// A proxy accepting on its own loopback port and forwarding to a member's peer port.
pub struct PeerProxy {
    port: u16,
    latency: Arc<Latency>,
    stop: Arc<AtomicBool>,
}

impl PeerProxy {
    /// Starts forwarding a fresh loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> std::io::Result<PeerProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let latency = Arc::new(Latency::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (latency.clone(), stop.clone());
        let upstream = SocketAddr::from(([127, 0, 0, 1], target));
        thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept(listener, upstream, l, s))?;
        Ok(PeerProxy {
            port,
            latency,
            stop,
        })
    }

    /// The port the members dial (and the member advertises).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on every chunk, both ways, waits `base` plus a random part of `spread`.
    pub fn delay(&self, base: Duration, spread: Duration) {
        self.latency
            .spread_us
            .store(spread.as_micros() as u64, Ordering::SeqCst);
        self.latency
            .base_us
            .store(base.as_micros() as u64, Ordering::SeqCst);
    }

    /// Ends the delay: chunks pass at once again (those already held still wait their turn).
    pub fn undelay(&self) {
        self.delay(Duration::ZERO, Duration::ZERO);
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop so that it sees the flag
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    latency: Arc<Latency>,
    stop: Arc<AtomicBool>,
) {
    let mut seed = u64::from(upstream.port());
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(down) = conn else { continue };
        // a member that is down (killed, restarting) refuses: so does its proxy, by closing
        let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) else {
            continue;
        };
        let _ = (down.set_nodelay(true), up.set_nodelay(true));
        seed = seed.wrapping_add(1);
        for (from, to, s) in [(&down, &up, seed), (&up, &down, !seed)] {
            if let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) {
                pipe(from, to, latency.clone(), s);
            }
        }
    }
}

/// Copies `from` to `to`, each chunk held until its due time; when `from` ends (or either
/// side fails) `to` is shut down for writing, and `from` for reading, so that the other
/// direction sees the end too.
fn pipe(mut from: TcpStream, mut to: TcpStream, latency: Arc<Latency>, seed: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let source = from.try_clone();
    let reader = thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut last = Instant::now();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let base = latency.base_us.load(Ordering::SeqCst);
            let spread = latency.spread_us.load(Ordering::SeqCst);
            let extra = if spread > 0 { rng.below(spread) } else { 0 };
            // never before the chunk ahead of it: a stream keeps its order
            let due = (Instant::now() + Duration::from_micros(base + extra)).max(last);
            last = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                // the receiver is gone: so is this connection, both ways
                let _ = to.shutdown(Shutdown::Both);
                if let Ok(s) = &source {
                    let _ = s.shutdown(Shutdown::Both);
                }
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = reader.join();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads, and a connection through a proxy to it.
    fn echo_through_proxy() -> (PeerProxy, TcpStream) {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = upstream.local_addr().unwrap().port();
        thread::spawn(move || {
            for conn in upstream.incoming() {
                let mut c = conn.unwrap();
                thread::spawn(move || {
                    let mut r = c.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut c);
                });
            }
        });
        let proxy = PeerProxy::start(port).unwrap();
        let conn = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (proxy, conn)
    }

    fn round_trip(conn: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
        conn.write_all(bytes).unwrap();
        let mut back = vec![0u8; bytes.len()];
        conn.read_exact(&mut back).unwrap();
        back
    }

    #[test]
    fn a_delayed_link_holds_each_way_and_keeps_the_order() {
        let (proxy, mut conn) = echo_through_proxy();
        assert_eq!(round_trip(&mut conn, b"before"), b"before");
        proxy.delay(Duration::from_millis(100), Duration::from_millis(20));
        let sent = Instant::now();
        // many small writes: each chunk gets its own draw, none may overtake another
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let chunk = i.to_be_bytes();
            conn.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
        }
        let mut back = vec![0u8; expected.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(back, expected, "the bytes came back out of order");
        // the delay is added going to the member and again coming back
        assert!(
            sent.elapsed() >= Duration::from_millis(200),
            "back after {:?}: the delay was not applied both ways",
            sent.elapsed()
        );
        proxy.undelay();
        assert_eq!(round_trip(&mut conn, b"after"), b"after");
    }

    #[test]
    fn a_member_that_is_down_is_refused_through_its_proxy() {
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let proxy = PeerProxy::start(port).unwrap();
        let mut conn = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert!(
            matches!(conn.read(&mut buf), Ok(0) | Err(_)),
            "the proxy kept a connection to a member that is not there"
        );
    }
}
