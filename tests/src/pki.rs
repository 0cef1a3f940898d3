//! Certificates for TLS tests, made by each test run (`cairn_tls::testpki`): a CA, server and
//! client certificates for loopback, expired and revoked ones, written into a temp dir.
//! Nothing here is committed.

use std::path::{Path, PathBuf};

use cairn_client::TlsOptions;
use cairn_tls::testpki::{Ca, Leaf, write_file, write_pair};
use tempfile::TempDir;

/// A certificate file and its key.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: u64,
}

/// A CA and the files it signed, in a temp dir removed on drop.
pub struct Pki {
    dir: TempDir,
    ca: Ca,
    pub ca_file: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("cairn-pki-")
            .tempdir()
            .expect("tempdir");
        let ca = Ca::new(name);
        let ca_file = write_file(dir.path(), &format!("{name}.crt"), &ca.cert_pem());
        Pki { dir, ca, ca_file }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate for 127.0.0.1, ::1 and localhost with common name `cn`, usable by a
    /// server, a peer or a client.
    pub fn issue(&mut self, file_name: &str, cn: &str) -> Pair {
        self.issue_leaf(file_name, &Leaf::loopback(cn))
    }

    pub fn issue_leaf(&mut self, file_name: &str, leaf: &Leaf) -> Pair {
        let issued = self.ca.issue(leaf);
        let (cert, key) = write_pair(self.dir.path(), file_name, &issued);
        Pair {
            cert,
            key,
            serial: issued.serial,
        }
    }

    /// A CRL file revoking `serials`.
    pub fn crl(&self, file_name: &str, serials: &[u64]) -> PathBuf {
        write_file(self.dir.path(), file_name, &self.ca.crl_pem(serials))
    }

    /// The usual mutual-TLS setup: a server certificate, a client certificate (CN `root`)
    /// the harness presents, client certificates required.
    pub fn server_tls(&mut self, peer: bool) -> ServerTls {
        ServerTls {
            ca: self.ca_file.clone(),
            server: self.issue("server", "server"),
            client: self.issue("client", "root"),
            peer,
        }
    }
}

/// How a test server uses TLS: `server` on its client listener (and on its peer listener
/// when `peer`), client certificates from `ca` required on both; `client` is what the
/// harness and etcdctl present.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub server: Pair,
    pub client: Pair,
    pub peer: bool,
}

impl ServerTls {
    /// The server's flags (the same for etcd and cairn).
    pub fn server_args(&self) -> Vec<String> {
        let mut a = vec![
            "--cert-file".into(),
            path(&self.server.cert),
            "--key-file".into(),
            path(&self.server.key),
            "--trusted-ca-file".into(),
            path(&self.ca),
            "--client-cert-auth".into(),
        ];
        if self.peer {
            a.extend([
                "--peer-cert-file".into(),
                path(&self.server.cert),
                "--peer-key-file".into(),
                path(&self.server.key),
                "--peer-trusted-ca-file".into(),
                path(&self.ca),
                "--peer-client-cert-auth".into(),
            ]);
        }
        a
    }

    /// etcdctl's (and cairnutl's) `--cacert --cert --key`.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "--cacert".into(),
            path(&self.ca),
            "--cert".into(),
            path(&self.client.cert),
            "--key".into(),
            path(&self.client.key),
        ]
    }

    /// The same as the client library's options.
    pub fn client_options(&self) -> TlsOptions {
        TlsOptions {
            cacert: Some(self.ca.clone()),
            cert: Some(self.client.cert.clone()),
            key: Some(self.client.key.clone()),
            ..Default::default()
        }
    }

    /// curl's `--cacert --cert --key`.
    pub fn curl_args(&self) -> Vec<String> {
        self.client_args()
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
