//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for the listen hosts, kept in
//! `<data-dir>/fixtures/{client,peer}/{cert,key}.pem` as etcd keeps it, and reused on later
//! starts while both files exist.
//!
//! Differences from etcd, by necessity: the key is ECDSA P-384 (etcd uses P-521, which ring
//! cannot sign with), and the files are written to a temporary name and renamed, so a crash
//! never leaves half a key behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::TlsError;

/// The certificate and key files of `dir`, created if either is missing.
pub fn self_signed(
    dir: &Path,
    hosts: &[String],
    validity_days: u32,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let fail = |problem: String| TlsError::SelfSigned {
        dir: dir.to_path_buf(),
        problem,
    };
    let mut names: Vec<String> = hosts.to_vec();
    names.sort();
    names.dedup();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
        .map_err(|e| fail(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| fail(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "cairn");
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + unix;
    params.not_before = now;
    params.not_after = now + std::time::Duration::from_secs(u64::from(validity_days) * 86_400);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    write_atomically(&key_path, key.serialize_pem().as_bytes(), true)
        .map_err(|e| fail(e.to_string()))?;
    write_atomically(&cert_path, cert.pem().as_bytes(), false).map_err(|e| fail(e.to_string()))?;
    tracing::info!(dir = %dir.display(), "created a self-signed certificate (auto TLS)");
    Ok((cert_path, key_path))
}

fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("pem.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("fixtures/client");
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let (c, k) = self_signed(&d, &hosts, 365).unwrap();
        let first = std::fs::read(&c).unwrap();
        let certs = crate::pem::certificates("certificate file", &c, &first).unwrap();
        assert!(crate::identity::valid_for(&certs[0], "127.0.0.1"));
        assert!(crate::identity::valid_for(&certs[0], "localhost"));
        crate::pem::private_key(&k, &std::fs::read(&k).unwrap()).unwrap();
        let (c2, _) = self_signed(&d, &hosts, 365).unwrap();
        assert_eq!(
            std::fs::read(c2).unwrap(),
            first,
            "an existing pair is reused"
        );
    }
}
