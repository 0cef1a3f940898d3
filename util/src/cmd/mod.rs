//! One file per command; each turns flags into calls and hands rows to the printer.

pub mod alarm;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod compaction;
pub mod defrag;
pub mod endpoint;
pub mod exit;
pub mod hashkv;
pub mod kv;
pub mod make_mirror;
pub mod member;
pub mod move_leader;
pub mod online;
pub mod perm;
pub mod role;
pub mod snapshot;
pub mod status;
pub mod user;

use std::sync::OnceLock;
use std::time::Duration;

use cairn_client::flags::ConnectionFlags;
use cairn_client::{Client, ClientError, Dialer};

use crate::printer::Format;

/// What every command gets from the global flags.
pub struct Global {
    conn: ConnectionFlags,
    /// Built from the connection flags when a command first goes online, and kept as a
    /// result: a bad TLS flag (or `ETCDCTL_CACERT` left in the environment) fails only the
    /// commands that go online, and `--user NAME` asks for its password only then (after
    /// `user add` has asked for the new user's, as etcdctl does).
    dialer: OnceLock<Result<Dialer, ClientError>>,
    pub endpoints: Vec<String>,
    pub command_timeout: Duration,
    pub format: Format,
}

impl Global {
    pub fn new(conn: &ConnectionFlags, format: Format) -> Global {
        Global {
            conn: conn.clone(),
            dialer: OnceLock::new(),
            endpoints: conn.endpoint_list(),
            command_timeout: conn.command_timeout,
            format,
        }
    }

    /// The dialer of `--endpoints`, or the one error that says which flag or file is wrong.
    pub fn dialer(&self) -> anyhow::Result<&Dialer> {
        self.dialer
            .get_or_init(|| self.conn.config().and_then(Dialer::new))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A client of the first endpoint, in order, that connects; each call bounded by
    /// `--command-timeout`.
    pub async fn connect_any(&self) -> anyhow::Result<Client> {
        Ok(self.dialer()?.connect_any().await?)
    }
}
