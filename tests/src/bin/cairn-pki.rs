//! `cairn-pki DIR`: writes a throwaway CA and certificates for loopback into DIR, for the
//! benchmark scripts' TLS runs (tests make their own through `cairn_tests::pki`):
//! `ca.crt`, `server.crt`/`server.key` (127.0.0.1, ::1, localhost), `client.crt`/`client.key`
//! (common name `root`). Nothing it writes is meant to be kept.

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cairn-pki DIR");
        return std::process::ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cairn-pki: cannot create {}: {e}", dir.display());
        return std::process::ExitCode::FAILURE;
    }
    let mut ca = cairn_tls::testpki::Ca::new("cairn-bench-ca");
    cairn_tls::testpki::write_file(&dir, "ca.crt", &ca.cert_pem());
    for (name, cn) in [("server", "server"), ("client", "root")] {
        let issued = ca.issue(&cairn_tls::testpki::Leaf::loopback(cn));
        cairn_tls::testpki::write_pair(&dir, name, &issued);
    }
    println!("{}", dir.display());
    std::process::ExitCode::SUCCESS
}
