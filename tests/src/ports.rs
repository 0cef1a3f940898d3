//! Free loopback ports, chosen at run time so tests can run in parallel.

use std::net::TcpListener;

/// Asks the kernel for a free port on 127.0.0.1 and releases it.
///
/// Another process may grab the port before the server binds it; [`crate::TestServer::start`]
/// retries with new ports when the server exits with "address already in use".
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// Two distinct free ports: (client, peer).
pub fn free_port_pair() -> (u16, u16) {
    // Hold both listeners at once so the kernel cannot hand out the same port twice.
    let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}
