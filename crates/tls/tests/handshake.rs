//! Real handshakes on loopback between this crate's listener and connector: who is let in,
//! who is refused, and that rotated files take effect at the next handshake.

use std::path::{Path, PathBuf};

use cairn_tls::testpki::{Ca, Leaf, write_file, write_pair};
use cairn_tls::{
    Acceptor, Allowed, ClientSettings, Connector, Listener, ServerSettings, client_config,
    server_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("test-ca"),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn ca_file(&self) -> PathBuf {
        write_file(self.path(), "ca.crt", &self.ca.cert_pem())
    }
    fn leaf(&mut self, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        let issued = self.ca.issue(leaf);
        write_pair(self.dir.path(), name, &issued)
    }
}

/// An echo server behind `settings`; returns its `https://` URI.
async fn echo_server(settings: &ServerSettings) -> String {
    let config = server_config(settings).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = Listener::new(tcp, Some(Acceptor::new(config)), "test").unwrap();
    let uri = format!("https://127.0.0.1:{}", listener.local_addr().port());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await;
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = conn.flush().await;
                }
            });
        }
    });
    uri
}

/// Connects and echoes one message; the error text if anything fails (TLS 1.3 reports a
/// refused client certificate only at the first read).
async fn round_trip(uri: &str, client: &ClientSettings) -> Result<Vec<u8>, String> {
    let config = client_config(client).map_err(|e| e.to_string())?;
    let uri: http::Uri = uri.parse().unwrap();
    let mut conn = Connector::new(Some(config))
        .connect(&uri)
        .await
        .map_err(|e| e.to_string())?;
    conn.write_all(b"ping").await.map_err(|e| e.to_string())?;
    conn.flush().await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}

/// The round trip failed, and its error says `why`.
fn refused(result: Result<Vec<u8>, String>, why: &str) {
    match result {
        Ok(_) => panic!("let in, but should be refused ({why})"),
        Err(e) => assert!(e.contains(why), "refused, but not for {why:?}: {e}"),
    }
}

fn mutual(pki: &mut Pki) -> (ServerSettings, ClientSettings) {
    let (cert, key) = pki.leaf("server", &Leaf::loopback("server"));
    let (ccert, ckey) = pki.leaf("client", &Leaf::loopback("client"));
    let ca = pki.ca_file();
    let server = ServerSettings {
        cert_file: cert,
        key_file: key,
        trusted_ca_file: Some(ca.clone()),
        client_cert_auth: true,
        ..Default::default()
    };
    let client = ClientSettings {
        ca_file: Some(ca),
        cert_file: Some(ccert),
        key_file: Some(ckey),
        ..Default::default()
    };
    (server, client)
}

#[tokio::test]
async fn mutual_tls_lets_in_only_certificates_of_the_trusted_ca() {
    let mut pki = Pki::new();
    let (server, client) = mutual(&mut pki);
    let uri = echo_server(&server).await;
    assert_eq!(round_trip(&uri, &client).await.unwrap(), b"ping");

    let no_cert = ClientSettings {
        cert_file: None,
        key_file: None,
        ..client.clone()
    };
    refused(round_trip(&uri, &no_cert).await, "CertificateRequired");

    let mut other = Ca::new("other-ca");
    let (oc, ok) = write_pair(pki.path(), "other", &other.issue(&Leaf::loopback("client")));
    let foreign = ClientSettings {
        cert_file: Some(oc),
        key_file: Some(ok),
        ..client.clone()
    };
    refused(round_trip(&uri, &foreign).await, "UnknownCA");

    let (ec, ek) = pki.leaf("expired", &Leaf::loopback("client").expired());
    let expired = ClientSettings {
        cert_file: Some(ec),
        key_file: Some(ek),
        ..client.clone()
    };
    refused(round_trip(&uri, &expired).await, "CertificateExpired");

    // the client does not trust a server whose CA it was not given
    let wrong_ca = ClientSettings {
        ca_file: Some(write_file(pki.path(), "other-ca.crt", &other.cert_pem())),
        ..client
    };
    let e = round_trip(&uri, &wrong_ca).await.unwrap_err();
    assert!(e.contains("not signed by a trusted CA"), "{e}");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_and_the_crl_is_reread() {
    let mut pki = Pki::new();
    let (mut server, client) = mutual(&mut pki);
    let (c2, k2) = pki.leaf("client2", &Leaf::loopback("client2"));
    let second = ClientSettings {
        cert_file: Some(c2),
        key_file: Some(k2),
        ..client.clone()
    };
    // revoke the first client's certificate (the CA issued: server 1001, client 1002)
    let crl = write_file(pki.path(), "crl.pem", &pki.ca.crl_pem(&[1002]));
    server.crl_file = Some(crl.clone());
    let uri = echo_server(&server).await;
    refused(round_trip(&uri, &client).await, "CertificateRevoked");
    assert!(round_trip(&uri, &second).await.is_ok());

    // a new CRL that revokes the second one instead takes effect at the next handshake
    std::fs::write(&crl, pki.ca.crl_pem(&[1003])).unwrap();
    refused(round_trip(&uri, &second).await, "CertificateRevoked");
    assert!(round_trip(&uri, &client).await.is_ok(), "no longer revoked");
}

#[tokio::test]
async fn rotated_server_certificate_is_served_at_the_next_handshake() {
    let mut pki = Pki::new();
    let (server, client) = mutual(&mut pki);
    let uri = echo_server(&server).await;
    let served = |uri: String, client: ClientSettings| async move {
        let config = client_config(&client).unwrap();
        let conn = Connector::new(Some(config))
            .connect(&uri.parse().unwrap())
            .await
            .unwrap();
        match conn {
            cairn_tls::ClientStream::Tls(s) => {
                s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
            }
            cairn_tls::ClientStream::Plain(_) => panic!("plain"),
        }
    };
    let before = served(uri.clone(), client.clone()).await;
    let fresh = pki.ca.issue(&Leaf::loopback("server-rotated"));
    std::fs::write(&server.cert_file, &fresh.cert_pem).unwrap();
    std::fs::write(&server.key_file, &fresh.key_pem).unwrap();
    let after = served(uri.clone(), client.clone()).await;
    assert_ne!(before, after);
    assert_eq!(
        cairn_tls::pem::common_name(&after).as_deref(),
        Some("server-rotated")
    );
    // a half-done rotation (a key that does not fit) keeps the last good pair in service
    let other = pki.ca.issue(&Leaf::loopback("x"));
    std::fs::write(&server.key_file, &other.key_pem).unwrap();
    assert_eq!(served(uri, client).await, after);
}

#[tokio::test]
async fn allowed_common_name_and_plain_http() {
    let mut pki = Pki::new();
    let (mut server, client) = mutual(&mut pki);
    server.allowed = Allowed {
        cn: Some("someone-else".into()),
        hostname: None,
    };
    let uri = echo_server(&server).await;
    refused(round_trip(&uri, &client).await, "CertificateUnknown");

    // plain HTTP/1 on the TLS port gets Go's 400 answer, and the listener serves on
    let addr = uri.trim_start_matches("https://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 400 Bad Request") && reply.contains("HTTPS server"),
        "{reply}"
    );
    server.allowed = Allowed {
        cn: Some("client".into()),
        hostname: None,
    };
    let uri = echo_server(&server).await;
    assert!(round_trip(&uri, &client).await.is_ok());
}

#[tokio::test]
async fn server_without_client_auth_and_skip_verify() {
    let mut pki = Pki::new();
    let (cert, key) = pki.leaf("server", &Leaf::loopback("server"));
    let server = ServerSettings {
        cert_file: cert,
        key_file: key,
        ..Default::default()
    };
    let uri = echo_server(&server).await;
    let anonymous = ClientSettings {
        ca_file: Some(pki.ca_file()),
        ..Default::default()
    };
    assert!(round_trip(&uri, &anonymous).await.is_ok());
    let skip = ClientSettings {
        skip_verify: true,
        ..Default::default()
    };
    assert!(round_trip(&uri, &skip).await.is_ok());
    let half = ClientSettings {
        cert_file: Some(PathBuf::from("c.pem")),
        ..Default::default()
    };
    let e = client_config(&half).unwrap_err().to_string();
    assert!(
        e.contains("KeyFile and CertFile must both be present"),
        "{e}"
    );
    // plain URIs need no TLS; https without TLS settings says so
    let plain = Connector::plain();
    let e = plain
        .connect(&uri.parse().unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no TLS settings"), "{e}");
}
