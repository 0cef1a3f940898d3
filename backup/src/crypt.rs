//! Client-side encryption of a backup's files with age (X25519 public keys, the `age` tool's
//! format): `backup run --encrypt-to age1...` turns each sealed segment and full snapshot into
//! `NAME.age` and removes the plain file, so the target holds nothing readable and the backup
//! host never holds the key that decrypts; `--identity FILE` (an `age-keygen` key file) lets
//! `backup list|verify` and `snapshot restore --from-backup` read them, decrypted into the
//! fetch cache (`target.rs`). A file is encrypted whole after it is sealed, under a `.part`
//! name renamed when complete, like every other file of a backup.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

/// What an encrypted file's name ends with, after its plain name.
pub const SUFFIX: &str = ".age";

#[derive(Debug, Error)]
pub enum CryptError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{what}: not an age public key (age1..., as age-keygen prints it): {why}")]
    Recipient { what: String, why: String },
    #[error("{}: not an age identity file (AGE-SECRET-KEY-1..., as age-keygen writes it): {why}", path.display())]
    Identity { path: PathBuf, why: String },
    #[error(
        "{what} is encrypted: give --identity FILE, the age identity of a key `backup run --encrypt-to` named"
    )]
    NoIdentity { what: String },
    #[error("{what}: cannot decrypt: {why}")]
    Decrypt { what: String, why: String },
    #[error("{}: cannot encrypt: {why}", path.display())]
    Encrypt { path: PathBuf, why: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CryptError + '_ {
    move |source| CryptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The public keys a backup's files are encrypted to (any one of them decrypts).
#[derive(Debug, Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    /// From `--encrypt-to KEY` values and `--encrypt-to-file FILE`s (one key per line, `#`
    /// comments and blank lines skipped, as age's recipients files); `None` when both are
    /// empty.
    pub fn parse(keys: &[String], files: &[PathBuf]) -> Result<Option<Recipients>, CryptError> {
        let mut out = Vec::new();
        for key in keys {
            out.push(recipient(key, key)?);
        }
        for path in files {
            let text = std::fs::read_to_string(path).map_err(io_at(path))?;
            let before = out.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                out.push(recipient(line, &format!("{}:{}", path.display(), n + 1))?);
            }
            if out.len() == before {
                return Err(CryptError::Recipient {
                    what: path.display().to_string(),
                    why: "the file holds no key".into(),
                });
            }
        }
        Ok((!out.is_empty()).then_some(Recipients(out)))
    }
}

fn recipient(key: &str, what: &str) -> Result<age::x25519::Recipient, CryptError> {
    age::x25519::Recipient::from_str(key).map_err(|why| CryptError::Recipient {
        what: what.to_string(),
        why: why.to_string(),
    })
}

/// The private keys a reader decrypts with.
pub struct Identities(Vec<Box<dyn age::Identity + Send + Sync>>);

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({} keys)", self.0.len())
    }
}

impl Identities {
    /// From `--identity FILE`s (age identity files); `None` when there are none.
    pub fn load(files: &[PathBuf]) -> Result<Option<Identities>, CryptError> {
        let mut out = Vec::new();
        for path in files {
            let bad = |why: String| CryptError::Identity {
                path: path.clone(),
                why,
            };
            let file =
                age::IdentityFile::from_file(path.display().to_string()).map_err(|e| {
                    match e.kind() {
                        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                            CryptError::Io {
                                path: path.clone(),
                                source: e,
                            }
                        }
                        _ => bad(e.to_string()),
                    }
                })?;
            let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
            if ids.is_empty() {
                return Err(bad("the file holds no key".into()));
            }
            out.extend(ids);
        }
        Ok((!out.is_empty()).then_some(Identities(out)))
    }
}

/// Encrypts the sealed file `plain` to `to` as `PLAIN.age` (written as `PLAIN.age.part`,
/// synced, renamed, the directory synced), then removes `plain`; returns the new path.
pub fn encrypt_file(plain: &Path, to: &Recipients) -> Result<PathBuf, CryptError> {
    let sealed = PathBuf::from(format!("{}{SUFFIX}", plain.display()));
    let part = PathBuf::from(format!("{}.part", sealed.display()));
    let bad = |why: String| CryptError::Encrypt {
        path: plain.to_path_buf(),
        why,
    };
    let encryptor = age::Encryptor::with_recipients(to.0.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| bad(e.to_string()))?;
    let mut input = File::open(plain).map_err(io_at(plain))?;
    let out = File::create(&part).map_err(io_at(&part))?;
    let mut w = encryptor
        .wrap_output(BufWriter::new(out))
        .map_err(io_at(&part))?;
    io::copy(&mut input, &mut w).map_err(io_at(&part))?;
    let out = w
        .finish()
        .and_then(|b| b.into_inner().map_err(|e| e.into_error()))
        .map_err(io_at(&part))?;
    out.sync_all().map_err(io_at(&part))?;
    drop(out);
    std::fs::rename(&part, &sealed).map_err(io_at(&sealed))?;
    let dir = sealed.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    std::fs::remove_file(plain).map_err(io_at(plain))?;
    Ok(sealed)
}

/// Decrypts `sealed` (named `what` in messages) into `out` (written as `OUT.part` and
/// renamed, so `out` exists only complete).
pub fn decrypt_file(
    sealed: &Path,
    what: &str,
    out: &Path,
    with: Option<&Identities>,
) -> Result<(), CryptError> {
    let Some(with) = with else {
        return Err(CryptError::NoIdentity { what: what.into() });
    };
    let bad = |why: String| CryptError::Decrypt {
        what: what.into(),
        why,
    };
    let input = File::open(sealed).map_err(io_at(sealed))?;
    let decryptor =
        age::Decryptor::new_buffered(BufReader::new(input)).map_err(|e| bad(e.to_string()))?;
    let mut r = decryptor
        .decrypt(with.0.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| bad(e.to_string()))?;
    let part = PathBuf::from(format!("{}.part", out.display()));
    let mut w = BufWriter::new(File::create(&part).map_err(io_at(&part))?);
    let copied = io::copy(&mut r, &mut w);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&part);
        // a damaged chunk fails its authentication: the file was altered or cut short
        return Err(bad(e.to_string()));
    }
    w.flush().map_err(io_at(&part))?;
    drop(w);
    std::fs::rename(&part, out).map_err(io_at(out))?;
    Ok(())
}

/// `name` without the encrypted suffix, and whether it had it.
pub fn plain_name(name: &str) -> (&str, bool) {
    match name.strip_suffix(SUFFIX) {
        Some(plain) => (plain, true),
        None => (name, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn keys(dir: &Path) -> (String, PathBuf) {
        let id = age::x25519::Identity::generate();
        let path = dir.join("key.txt");
        std::fs::write(
            &path,
            format!("# a test key\n{}\n", id.to_string().expose_secret()),
        )
        .unwrap();
        (id.to_public().to_string(), path)
    }

    #[test]
    fn a_file_encrypted_to_a_key_decrypts_with_its_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let (public, key) = keys(dir.path());
        let plain = dir.path().join("seg-1-2.cseg");
        let body: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&plain, &body).unwrap();
        let to = Recipients::parse(&[public], &[]).unwrap().unwrap();
        let sealed = encrypt_file(&plain, &to).unwrap();
        assert_eq!(sealed, dir.path().join("seg-1-2.cseg.age"));
        assert!(!plain.exists(), "the plain file is removed");
        assert_ne!(
            std::fs::read(&sealed).unwrap()[..body.len().min(64)],
            body[..64]
        );

        let ids = Identities::load(&[key]).unwrap();
        let out = dir.path().join("out");
        decrypt_file(&sealed, "the segment", &out, ids.as_ref()).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), body);

        let e = decrypt_file(&sealed, "the segment", &out, None).unwrap_err();
        assert!(e.to_string().contains("give --identity FILE"), "{e}");
        let other_dir = tempfile::tempdir().unwrap();
        let (_, other) = keys(other_dir.path());
        let other = Identities::load(&[other]).unwrap();
        let e = decrypt_file(&sealed, "the segment", &out, other.as_ref()).unwrap_err();
        assert!(
            e.to_string().starts_with("the segment: cannot decrypt"),
            "{e}"
        );

        // a flipped byte in the body fails its chunk's authentication
        let mut bytes = std::fs::read(&sealed).unwrap();
        let at = bytes.len() - 100;
        bytes[at] ^= 1;
        std::fs::write(&sealed, bytes).unwrap();
        let bad = dir.path().join("bad");
        let e = decrypt_file(&sealed, "the segment", &bad, ids.as_ref()).unwrap_err();
        assert!(e.to_string().contains("cannot decrypt"), "{e}");
        assert!(!bad.exists() && !dir.path().join("bad.part").exists());
    }

    #[test]
    fn bad_keys_are_named() {
        let e = Recipients::parse(&["age1nope".into()], &[]).unwrap_err();
        assert!(
            e.to_string().starts_with("age1nope: not an age public key"),
            "{e}"
        );
        assert!(Recipients::parse(&[], &[]).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("recipients");
        std::fs::write(&empty, "# nothing\n").unwrap();
        let e = Recipients::parse(&[], &[empty]).unwrap_err();
        assert!(e.to_string().contains("holds no key"), "{e}");
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello\n").unwrap();
        let e = Identities::load(&[junk]).unwrap_err();
        assert!(e.to_string().contains("not an age identity file"), "{e}");
        let e = Identities::load(&[dir.path().join("absent")]).unwrap_err();
        assert!(e.to_string().contains("No such file"), "{e}");
    }
}
