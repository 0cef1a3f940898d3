//! etcdctl's exit codes (`ctlv3/command/error.go`): a command fails with [`Exit`] to pick
//! one; any other error exits 1. `main` prints `Error: <message>` either way.

use std::fmt;

/// A bad connection: the endpoints unreachable or the credentials refused.
pub const BAD_CONNECTION: u8 = 2;
/// A valid flag with a value this command does not support (`-w table` for `user get`).
pub const BAD_FEATURE: u8 = 4;
/// Wrong arguments: their number, a bad permission type, exclusive flags.
pub const BAD_ARGS: u8 = 128;

/// An error with the exit code etcdctl gives it.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub error: anyhow::Error,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

// No `source()`: the message already has the whole chain, and `main` prints it with `{:#}`.
impl std::error::Error for Exit {}

/// `error`, to exit with `code`.
pub fn with_code(code: u8, error: impl Into<anyhow::Error>) -> anyhow::Error {
    Exit {
        code,
        error: error.into(),
    }
    .into()
}

/// etcdctl's `ExitBadArgs` with its message.
pub fn bad_args(msg: impl fmt::Display) -> anyhow::Error {
    with_code(BAD_ARGS, anyhow::anyhow!("{msg}"))
}

/// The N words of `args`, or etcdctl's `msg` (exit 128): etcdctl counts a command's
/// arguments itself, so a wrong number gets its message, not a usage text.
pub fn exact_args<'a, const N: usize>(
    args: &'a [String],
    msg: &str,
) -> anyhow::Result<[&'a str; N]> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    words.try_into().map_err(|_| bad_args(msg))
}

/// At least `n` words in `args`, or etcdctl's `msg` (exit 128).
pub fn min_args(args: &[String], n: usize, msg: &str) -> anyhow::Result<()> {
    if args.len() < n {
        return Err(bad_args(msg));
    }
    Ok(())
}

/// The code `e` exits with.
pub fn code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<Exit>().map_or(1, |x| x.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let e = bad_args("role add command requires role name as its argument");
        assert_eq!(code_of(&e), 128);
        assert_eq!(
            format!("{e:#}"),
            "role add command requires role name as its argument"
        );
        let e = with_code(BAD_CONNECTION, anyhow::anyhow!("a").context("b"));
        assert_eq!((code_of(&e), format!("{e:#}")), (2, "b: a".to_string()));
        assert_eq!(code_of(&anyhow::anyhow!("plain")), 1);
    }

    #[test]
    fn argument_counts() {
        let args: Vec<String> = vec!["bob".into(), "r1".into()];
        let [user, role] = exact_args(&args, "two").unwrap();
        assert_eq!((user, role), ("bob", "r1"));
        let e = exact_args::<1>(&args, "user get command requires user name as its argument");
        assert_eq!(code_of(&e.unwrap_err()), 128);
        assert!(exact_args::<0>(&[], "none").is_ok());
        assert!(min_args(&args, 2, "m").is_ok());
        assert_eq!(min_args(&args, 3, "m").unwrap_err().to_string(), "m");
    }
}
