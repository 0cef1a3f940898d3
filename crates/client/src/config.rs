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

/// `name:password`, or `name` with `--password`, as etcdctl's `--user` takes it. `flag` is
/// the flags' prefix the error names: `""` for `--user`/`--password`, `"dest-"` for
/// make-mirror's `--dest-user`/`--dest-password`.
pub fn credentials(
    flag: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<Option<(String, String)>, String> {
    let Some(user) = user else {
        return Ok(None);
    };
    if let Some(p) = password {
        return Ok(Some((user.to_string(), p.to_string())));
    }
    match user.split_once(':') {
        Some((name, pass)) => Ok(Some((name.to_string(), pass.to_string()))),
        None => Err(format!(
            "--{flag}user {user:?} has no password: give --{flag}user {user}:PASSWORD or --{flag}password"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_forms() {
        assert_eq!(credentials("", None, None).unwrap(), None);
        assert_eq!(
            credentials("", Some("root:pw"), None).unwrap(),
            Some(("root".into(), "pw".into()))
        );
        assert_eq!(
            credentials("", Some("root"), Some("a:b")).unwrap(),
            Some(("root".into(), "a:b".into()))
        );
        let e = credentials("dest-", Some("root"), None).unwrap_err();
        assert!(e.starts_with("--dest-user \"root\" has no password"), "{e}");
    }
}
