//! How to reach one cluster: endpoints, TLS, timeouts, credentials. Filled from etcdctl's
//! flags ([`crate::flags`]) or by a library caller; [`crate::Dialer::new`] checks it once.

use std::time::Duration;

use crate::security::TlsOptions;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`; tried in order on failures.
    pub endpoints: Vec<String>,
    pub tls: TlsOptions,
    /// How long connecting (TCP and TLS) may take (etcdctl's `--dial-timeout`, 2 s).
    pub dial_timeout: Duration,
    /// Deadline of each unary call (etcdctl's `--command-timeout`, 5 s).
    pub command_timeout: Duration,
    /// HTTP/2 pings, so a dead server is noticed on an idle stream: (interval, timeout).
    pub keepalive: Option<(Duration, Duration)>,
    /// `(user, password)`: every connection authenticates and sends the token.
    pub user: Option<(String, String)>,
    /// Send etcd's `hasleader` metadata: calls fail instead of waiting on a member that has
    /// lost its leader.
    pub require_leader: bool,
}

impl Default for ClientConfig {
    /// etcdctl's defaults, for `127.0.0.1:2379`.
    fn default() -> Self {
        ClientConfig {
            endpoints: vec!["127.0.0.1:2379".into()],
            tls: TlsOptions::default(),
            dial_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            keepalive: None,
            user: None,
            require_leader: false,
        }
    }
}

impl ClientConfig {
    /// The defaults with these endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

/// `name:password`, or `name` with `--password`, as etcdctl's `--user` takes it; `name`
/// alone gets the password typed at `prompt` when stdin is a terminal (etcdctl asks even
/// when it is not, reading the script's input). `flag` is the flags' prefix the error
/// names: `""` for `--user`/`--password`, `"dest-"` for make-mirror's
/// `--dest-user`/`--dest-password`.
pub fn credentials(
    flag: &str,
    prompt: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<Option<(String, String)>, String> {
    credentials_with(flag, user, password, || {
        crate::prompt::ask_on_terminal(prompt)
    })
}

/// [`credentials`], with `ask` for the password `user` lacks (`None`: nobody to ask).
fn credentials_with(
    flag: &str,
    user: Option<&str>,
    password: Option<&str>,
    ask: impl FnOnce() -> Option<std::io::Result<String>>,
) -> Result<Option<(String, String)>, String> {
    let Some(user) = user else {
        return Ok(None);
    };
    if let Some(p) = password {
        return Ok(Some((user.to_string(), p.to_string())));
    }
    if let Some((name, pass)) = user.split_once(':') {
        return Ok(Some((name.to_string(), pass.to_string())));
    }
    match ask() {
        Some(Ok(p)) => Ok(Some((user.to_string(), p))),
        Some(Err(e)) => Err(format!(
            "--{flag}user {user}: cannot read the password: {e}"
        )),
        None => Err(format!(
            "--{flag}user {user:?} has no password and stdin is not a terminal to ask on: give --{flag}user {user}:PASSWORD or --{flag}password"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_forms() {
        let nobody = || None;
        assert_eq!(credentials_with("", None, None, nobody).unwrap(), None);
        assert_eq!(
            credentials_with("", Some("root:pw"), None, nobody).unwrap(),
            Some(("root".into(), "pw".into()))
        );
        assert_eq!(
            credentials_with("", Some("root"), Some("a:b"), nobody).unwrap(),
            Some(("root".into(), "a:b".into()))
        );
        let e = credentials_with("dest-", Some("root"), None, nobody).unwrap_err();
        assert!(e.starts_with("--dest-user \"root\" has no password"), "{e}");
    }

    /// A name alone is completed by what was typed; a failed read names the flag.
    #[test]
    fn typed_passwords() {
        let typed = credentials_with("", Some("root"), None, || Some(Ok("pw".into())));
        assert_eq!(typed.unwrap(), Some(("root".into(), "pw".into())));
        let failed = credentials_with("", Some("root"), None, || {
            Some(Err(std::io::Error::other("no tty")))
        });
        assert_eq!(
            failed.unwrap_err(),
            "--user root: cannot read the password: no tty"
        );
    }
}
