//! Certificate rotation without a restart: the server's certificate and key files are
//! replaced while it serves, and the next handshake gets the new certificate (etcd re-reads
//! them at every handshake; so does cairn). The same body against etcd and cairn.

use cairn_tests::{Kind, both_kinds, grpc};
use cairn_tls::{ClientSettings, ClientStream, Connector};

use crate::{ctl_ok, tls_server};

both_kinds!(etcdctl: rotated_certificate_is_served_at_the_next_handshake);

/// The common name of the certificate the server presents to a new connection.
fn served_common_name(url: &str, tls: &cairn_tests::pki::ServerTls) -> String {
    let settings = ClientSettings {
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(tls.client.cert.clone()),
        key_file: Some(tls.client.key.clone()),
        ..Default::default()
    };
    let connector = Connector::new(Some(
        cairn_tls::client_config(&settings).expect("client config"),
    ));
    let uri: tonic::transport::Uri = url.parse().expect("uri");
    grpc::block_on(async move {
        match connector.connect(&uri).await.expect("TLS connect") {
            ClientStream::Tls(s) => {
                let cert = &s
                    .get_ref()
                    .1
                    .peer_certificates()
                    .expect("server certificate")[0];
                cairn_tls::pem::common_name(cert).unwrap_or_default()
            }
            ClientStream::Plain(_) => panic!("not TLS"),
        }
    })
}

fn rotated_certificate_is_served_at_the_next_handshake(kind: Kind) {
    let (mut pki, tls, s) = tls_server(kind, &[]);
    assert_eq!(served_common_name(&s.url(), &tls), "server");
    ctl_ok(&s, &["put", "before", "rotation"]);

    let fresh = pki.issue("rotated", "server-rotated");
    std::fs::copy(&fresh.cert, &tls.server.cert).unwrap();
    std::fs::copy(&fresh.key, &tls.server.key).unwrap();

    assert_eq!(served_common_name(&s.url(), &tls), "server-rotated");
    assert_eq!(
        ctl_ok(&s, &["get", "before", "--print-value-only"]),
        "rotation\n"
    );
}
