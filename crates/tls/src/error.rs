//! The one error type of this crate. Every message names the file or flag at fault and says
//! what to do next.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read at all.
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but does not hold what it should (no PEM block of the right kind,
    /// a certificate that does not parse, a key that does not match its certificate).
    #[error("the {what} {}: {problem}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// Flags that do not fit together, or a value rustls cannot do (a cipher suite, a version).
    #[error("{0}")]
    Config(String),
    /// Writing a self-signed certificate (`--auto-tls`) failed.
    #[error("cannot create the self-signed certificate in {}: {problem}", dir.display())]
    SelfSigned { dir: PathBuf, problem: String },
}

impl TlsError {
    pub(crate) fn file(what: &'static str, path: &std::path::Path, problem: impl ToString) -> Self {
        TlsError::File {
            what,
            path: path.to_path_buf(),
            problem: problem.to_string(),
        }
    }
}
