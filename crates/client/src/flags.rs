//! etcdctl's global connection flags, with its names, defaults and `ETCDCTL_*` variables, as a
//! `clap` group any command line can flatten in.
//!
//! One difference: etcdctl refuses a flag that is also set in the environment ("conflicting
//! environment variable ... is shadowed"); here the flag wins, as in most tools.
//!
//! The boolean flags take a value only after `=`, as Go's flags do: `--insecure-skip-tls-verify
//! get k` is the flag and the command `get k`, not the value `get`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ClientConfig, credentials};
use crate::error::ClientError;
use crate::security::TlsOptions;

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionFlags {
    /// gRPC endpoints, comma separated (HOST:PORT, http://HOST:PORT or https://HOST:PORT).
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: String,
    /// Timeout for connecting (TCP and TLS), e.g. 2s.
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Timeout for each command, e.g. 5s.
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Verify certificates of TLS-enabled secure servers using this CA bundle.
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Identify secure client using this TLS certificate file.
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    pub cert: Option<PathBuf>,
    /// Identify secure client using this TLS key file.
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    pub key: Option<PathBuf>,
    /// Skip server certificate verification (CAUTION: only for testing).
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub insecure_skip_tls_verify: bool,
    /// Disable transport security for client connections (bare HOST:PORT endpoints are plain
    /// unless certificates are given).
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_TRANSPORT", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub insecure_transport: bool,
    /// Username[:password] for authentication (prompts for the password if it is not
    /// supplied and stdin is a terminal).
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    pub user: Option<String>,
    /// Password for authentication (when --user has none).
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    pub password: Option<String>,
}

impl ConnectionFlags {
    /// The endpoints as a list.
    pub fn endpoint_list(&self) -> Vec<String> {
        split_endpoints(&self.endpoints)
    }

    pub fn config(&self) -> Result<ClientConfig, ClientError> {
        Ok(ClientConfig {
            endpoints: self.endpoint_list(),
            tls: TlsOptions {
                cacert: self.cacert.clone(),
                cert: self.cert.clone(),
                key: self.key.clone(),
                insecure_skip_tls_verify: self.insecure_skip_tls_verify,
                insecure_transport: self.insecure_transport,
            },
            dial_timeout: self.dial_timeout,
            command_timeout: self.command_timeout,
            keepalive: None,
            user: credentials(
                "",
                "Password: ",
                self.user.as_deref(),
                self.password.as_deref(),
            )
            .map_err(ClientError::Config)?,
            require_leader: false,
        })
    }
}

/// `a:1, b:2` -> `["a:1", "b:2"]`.
pub fn split_endpoints(s: &str) -> Vec<String> {
    s.split(',')
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect()
}

/// A Go-style duration: `5s`, `500ms`, `2m`, `1h`, `1m30s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 5s, 500ms or 1m30s");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => {
                return Err(format!(
                    "{s:?} has an unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        };
        total += Duration::from_secs_f64(secs);
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn flags_to_config() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            c: ConnectionFlags,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--endpoints",
            "a:1, https://b:2",
            "--cacert",
            "ca.crt",
            "--user",
            "root:pw",
        ])
        .unwrap();
        let cfg = cli.c.config().unwrap();
        assert_eq!(cfg.endpoints, vec!["a:1", "https://b:2"]);
        assert!(cfg.tls.tls_by_default());
        assert_eq!(cfg.user, Some(("root".into(), "pw".into())));
        // clap itself refuses an empty path, as etcdctl refuses `--cert ""`
        assert!(Cli::try_parse_from(["x", "--cert", ""]).is_err());
        let cli = Cli::try_parse_from(["x", "--insecure-transport=false"]).unwrap();
        assert!(cli.c.config().unwrap().tls.tls_by_default());
        // a bare boolean flag is true and leaves the next word alone, as Go's flags do
        #[derive(clap::Parser)]
        struct WithArg {
            #[command(flatten)]
            c: ConnectionFlags,
            word: String,
        }
        let cli = WithArg::try_parse_from(["x", "--insecure-skip-tls-verify", "get"]).unwrap();
        assert!(cli.c.insecure_skip_tls_verify && cli.word == "get");
    }
}
