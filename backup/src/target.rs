//! Where a backup lives: a local directory, or a prefix in object storage (S3 and
//! S3-compatible stores, GCS, Azure) through the `object_store` crate.
//!
//! Both hold the same flat set of files (`timeline.rs` names them). The format code reads and
//! writes local files only: a directory target is read in place, and an object-store target
//! is listed remotely and each file it needs is fetched into a local cache first (and files
//! written by `backup run` are uploaded from its spool directory, `upload.rs`). An encrypted
//! file (`NAME.age`, `crypt.rs`) of either is read as `NAME` in the cache's `plain/`
//! directory, where a fetch decrypts it.
//!
//! Object stores are configured as `object_store` configures them, from the environment:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` (an
//! S3-compatible server), `AWS_ALLOW_HTTP=true` (a plain-HTTP endpoint); `GOOGLE_*` for
//! `gs://`; `AZURE_*` for `az://`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crypt::{CryptError, Identities, SUFFIX, decrypt_file, plain_name};

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Store {
        what: String,
        source: object_store::Error,
    },
    #[error(
        "{url}: not a backup target: {why} (a directory, file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix)"
    )]
    Url { url: String, why: String },
    #[error(transparent)]
    Crypt(#[from] CryptError),
}

impl TargetError {
    fn store(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> TargetError {
        let what = what.into();
        move |source| TargetError::Store { what, source }
    }

    /// The store said the object is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            TargetError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> TargetError + '_ {
    move |source| TargetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file of a backup.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As stored (`NAME.age` when encrypted).
    pub name: String,
    /// Where it is read from: in the directory, or where a fetch puts it (decrypted, for an
    /// encrypted file).
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Target {
    place: Place,
    /// Where fetched and decrypted files go; removed with the target.
    cache: tempfile::TempDir,
    /// What decrypts encrypted files (`--identity`).
    identities: Option<Arc<Identities>>,
}

#[derive(Debug)]
enum Place {
    Dir(PathBuf),
    Store(Remote),
}

#[derive(Debug)]
struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
}

/// The cache's directory of decrypted files.
const PLAIN: &str = "plain";

/// How long one request to the store may take before it counts as failed (the run's own
/// retries, which report themselves, take over from there).
const REQUEST_TIMEOUT: &str = "60s";
const CONNECT_TIMEOUT: &str = "5s";

impl Target {
    /// `spec` is a directory path, `file:///path`, or an object-store URL. Fetched and
    /// decrypted files are cached under `scratch` (default: the system's temporary
    /// directory).
    pub fn open(spec: &str, scratch: Option<&Path>) -> Result<Target, TargetError> {
        let place = Place::open(spec)?;
        let base = scratch
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).map_err(io_at(&base))?;
        let cache = tempfile::Builder::new()
            .prefix(".cairn-backup-fetch-")
            .tempdir_in(&base)
            .map_err(io_at(&base))?;
        let plain = cache.path().join(PLAIN);
        std::fs::create_dir(&plain).map_err(io_at(&plain))?;
        Ok(Target {
            place,
            cache,
            identities: None,
        })
    }

    /// Reads encrypted files with `identities`.
    pub fn with_identities(mut self, identities: Option<Identities>) -> Target {
        self.identities = identities.map(Arc::new);
        self
    }

    /// The directory, for a directory target.
    pub fn dir(&self) -> Option<&Path> {
        match &self.place {
            Place::Dir(d) => Some(d),
            Place::Store(_) => None,
        }
    }
}

impl Place {
    fn open(spec: &str) -> Result<Place, TargetError> {
        let bad = |why: &str| TargetError::Url {
            url: spec.to_string(),
            why: why.to_string(),
        };
        let Some((scheme, _)) = spec.split_once("://") else {
            return Ok(Place::Dir(PathBuf::from(spec)));
        };
        if scheme == "file" {
            let path = spec.trim_start_matches("file://");
            if !path.starts_with('/') {
                return Err(bad("a file URL needs an absolute path (file:///path)"));
            }
            return Ok(Place::Dir(PathBuf::from(path)));
        }
        // reqwest's rustls has no crypto provider of its own here: ring, as everywhere else
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
                let mut b = AmazonS3Builder::from_env().with_url(spec).with_retry(retry);
                for (key, value) in [
                    (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
                    (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
                ] {
                    if b.get_config_value(&K::Client(key)).is_none() {
                        b = b.with_config(K::Client(key), value);
                    }
                }
                Arc::new(b.build().map_err(|e| bad(&e.to_string()))?)
            }
            "gs" => {
                use object_store::gcp::GoogleCloudStorageBuilder;
                let b = GoogleCloudStorageBuilder::from_env()
                    .with_url(spec)
                    .with_retry(retry);
                Arc::new(b.build().map_err(|e| bad(&e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                use object_store::azure::MicrosoftAzureBuilder;
                let b = MicrosoftAzureBuilder::from_env()
                    .with_url(spec)
                    .with_retry(retry);
                Arc::new(b.build().map_err(|e| bad(&e.to_string()))?)
            }
            other => return Err(bad(&format!("unknown scheme {other}://"))),
        };
        // s3://bucket/a/b: the bucket is the store, a/b the prefix
        let rest = spec.split_once("://").map_or("", |(_, r)| r);
        let prefix = rest
            .split_once('/')
            .map_or("", |(_, p)| p)
            .trim_matches('/');
        let prefix = ObjPath::parse(prefix).map_err(|e| bad(&e.to_string()))?;
        Ok(Place::Store(Remote {
            url: spec.trim_end_matches('/').to_string(),
            store,
            prefix,
        }))
    }
}

impl Target {
    /// Whether `path` is where an encrypted file is read decrypted; its stored name then.
    fn encrypted_name(&self, path: &Path) -> Option<String> {
        (path.parent() == Some(&self.cache.path().join(PLAIN)))
            .then(|| format!("{}{SUFFIX}", file_name(path)))
    }

    /// The stored name of the file read at `path`.
    fn stored_name(&self, path: &Path) -> String {
        self.encrypted_name(path).unwrap_or_else(|| file_name(path))
    }

    /// The target as the operator named it.
    pub fn describe(&self) -> String {
        match &self.place {
            Place::Dir(d) => d.display().to_string(),
            Place::Store(r) => r.url.clone(),
        }
    }

    /// Where a file of the backup is, for messages: the path, or the object's URL.
    pub fn locate(&self, path: &Path) -> String {
        match (&self.place, self.encrypted_name(path)) {
            (Place::Dir(_), None) => path.display().to_string(),
            (Place::Dir(d), Some(name)) => d.join(name).display().to_string(),
            (Place::Store(r), _) => format!("{}/{}", r.url, self.stored_name(path)),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.place, Place::Store(_))
    }

    /// The files of the backup (a missing directory or an empty prefix: none).
    pub async fn entries(&self) -> Result<Vec<Entry>, TargetError> {
        let mut entries = self.stored_entries().await?;
        for e in &mut entries {
            if let (plain, true) = plain_name(&e.name) {
                e.path = self.cache.path().join(PLAIN).join(plain);
            }
        }
        Ok(entries)
    }

    async fn stored_entries(&self) -> Result<Vec<Entry>, TargetError> {
        match &self.place {
            Place::Dir(d) => dir_entries(d),
            Place::Store(r) => {
                let mut out = Vec::new();
                let mut list = r.store.list(Some(&r.prefix));
                while let Some(meta) = list.next().await {
                    let meta = meta.map_err(TargetError::store(format!("listing {}", r.url)))?;
                    let parts: Vec<_> = match meta.location.prefix_match(&r.prefix) {
                        Some(p) => p.collect(),
                        None => continue,
                    };
                    // only the files directly under the prefix are the backup's
                    let [name] = parts.as_slice() else { continue };
                    let name = name.as_ref().to_string();
                    out.push(Entry {
                        path: self.cache.path().join(&name),
                        name,
                        bytes: meta.size,
                        modified: Some(meta.last_modified.into()),
                    });
                }
                Ok(out)
            }
        }
    }

    /// Makes the file at `path` (an [`Entry::path`]) readable locally: a directory's is;
    /// an object is downloaded into the cache (whole, then renamed); an encrypted file is
    /// decrypted into the cache.
    pub async fn fetch(&self, path: &Path) -> Result<(), TargetError> {
        if let Some(name) = self.encrypted_name(path) {
            if path.exists() {
                return Ok(());
            }
            let sealed = match &self.place {
                Place::Dir(d) => d.join(&name),
                Place::Store(r) => {
                    let local = self.cache.path().join(&name);
                    r.download(&name, &local).await?;
                    local
                }
            };
            let (what, out, ids) = (
                self.locate(path),
                path.to_path_buf(),
                self.identities.clone(),
            );
            let decrypted = tokio::task::spawn_blocking(move || {
                decrypt_file(&sealed, &what, &out, ids.as_deref()).map(|()| sealed)
            })
            .await
            .map_err(|e| TargetError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
            if let (Ok(sealed), true) = (&decrypted, self.is_remote()) {
                let _ = std::fs::remove_file(sealed);
            }
            decrypted?;
            return Ok(());
        }
        let Place::Store(r) = &self.place else {
            return Ok(());
        };
        if path.exists() {
            return Ok(());
        }
        r.download(&file_name(path), path).await
    }
}

impl Remote {
    /// Downloads the object `name` to `path` (whole, then renamed).
    async fn download(&self, name: &str, path: &Path) -> Result<(), TargetError> {
        let r = self;
        let what = format!("fetching {}/{name}", r.url);
        let got = r
            .store
            .get(&r.prefix.clone().join(name))
            .await
            .map_err(TargetError::store(what.clone()))?;
        let part = path.with_extension("fetching");
        let mut file = tokio::fs::File::create(&part).await.map_err(io_at(&part))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(TargetError::store(what.clone()))?;
            file.write_all(&chunk).await.map_err(io_at(&part))?;
        }
        file.flush().await.map_err(io_at(&part))?;
        drop(file);
        tokio::fs::rename(&part, path).await.map_err(io_at(path))?;
        Ok(())
    }
}

impl Target {
    /// Drops a fetched or decrypted copy (a directory's own files stay).
    pub fn forget(&self, path: &Path) {
        if path.starts_with(self.cache.path()) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Stores the local file `local` under its own name (object stores; a directory target
    /// is written in place).
    pub async fn upload(&self, local: &Path) -> Result<(), TargetError> {
        let Place::Store(r) = &self.place else {
            return Ok(());
        };
        let name = file_name(local);
        let location = r.prefix.clone().join(name.as_str());
        let what = format!("uploading {} to {}/{name}", local.display(), r.url);
        let mut file = tokio::fs::File::open(local).await.map_err(io_at(local))?;
        let size = file.metadata().await.map_err(io_at(local))?.len();
        const PART: usize = 8 << 20;
        if size <= PART as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await.map_err(io_at(local))?;
            r.store
                .put(&location, PutPayload::from(buf))
                .await
                .map_err(TargetError::store(what))?;
            return Ok(());
        }
        let upload = r
            .store
            .put_multipart(&location)
            .await
            .map_err(TargetError::store(what.clone()))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; PART];
        loop {
            let n = file.read(&mut buf).await.map_err(io_at(local))?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4)
                .await
                .map_err(TargetError::store(what.clone()))?;
            w.write(&buf[..n]);
        }
        w.finish().await.map_err(TargetError::store(what))?;
        Ok(())
    }

    /// Removes one file of the backup (an [`Entry::path`]; retention).
    pub async fn delete(&self, path: &Path) -> Result<(), TargetError> {
        self.forget(path);
        let name = self.stored_name(path);
        match &self.place {
            Place::Dir(d) => {
                let stored = d.join(&name);
                std::fs::remove_file(&stored).map_err(io_at(&stored))
            }
            Place::Store(r) => r
                .store
                .delete(&r.prefix.clone().join(name.as_str()))
                .await
                .map_err(TargetError::store(format!("removing {}/{name}", r.url))),
        }
    }

    /// The object `name` under the prefix (the lock).
    pub(crate) fn object(&self, name: &str) -> Option<(&Arc<dyn ObjectStore>, ObjPath, String)> {
        match &self.place {
            Place::Dir(_) => None,
            Place::Store(r) => Some((
                &r.store,
                r.prefix.clone().join(name),
                format!("{}/{name}", r.url),
            )),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files of a local directory (a missing one has none).
pub fn dir_entries(dir: &Path) -> Result<Vec<Entry>, TargetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at(dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(io_at(&path))?;
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            path,
            bytes: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_a_directory_or_a_store() {
        let t = Target::open("/var/backups/cairn", None).unwrap();
        assert_eq!(t.dir(), Some(Path::new("/var/backups/cairn")));
        let t = Target::open("file:///var/backups/cairn", None).unwrap();
        assert_eq!(t.dir(), Some(Path::new("/var/backups/cairn")));
        let e = Target::open("file://relative", None).unwrap_err();
        assert!(e.to_string().contains("absolute path"), "{e}");
        let e = Target::open("ftp://host/x", None).unwrap_err();
        assert!(e.to_string().contains("unknown scheme ftp://"), "{e}");
        let t = Target::open("s3://bucket/a/b/", None).unwrap();
        assert_eq!(t.describe(), "s3://bucket/a/b");
        assert_eq!(
            t.locate(Path::new("/x/full-1.snap")),
            "s3://bucket/a/b/full-1.snap"
        );
    }
}
