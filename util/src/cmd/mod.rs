//! One file per command; each turns flags into calls and hands rows to the printer.

pub mod alarm;
pub mod bench;
pub mod compaction;
pub mod defrag;
pub mod endpoint;
pub mod hashkv;
pub mod kv;
pub mod make_mirror;
pub mod member;
pub mod move_leader;
pub mod online;
pub mod snapshot;
pub mod status;

use std::time::Duration;

use cairn_client::flags::ConnectionFlags;
use cairn_client::{Client, ClientError, Dialer};

use crate::printer::Format;

/// What every command gets from the global flags.
pub struct Global {
    /// Built once from the connection flags; kept as a result so that a bad TLS flag (or
    /// `ETCDCTL_CACERT` left in the environment) fails only the commands that go online.
    dialer: Result<Dialer, ClientError>,
    pub endpoints: Vec<String>,
    pub command_timeout: Duration,
    pub format: Format,
}

impl Global {
    pub fn new(conn: &ConnectionFlags, format: Format) -> Global {
        Global {
            dialer: conn.config().and_then(Dialer::new),
            endpoints: conn.endpoint_list(),
            command_timeout: conn.command_timeout,
            format,
        }
    }

    /// The dialer of `--endpoints`, or the one error that says which flag or file is wrong.
    pub fn dialer(&self) -> anyhow::Result<&Dialer> {
        self.dialer
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A client of the first endpoint, in order, that connects; each call bounded by
    /// `--command-timeout`.
    pub async fn connect_any(&self) -> anyhow::Result<Client> {
        Ok(self.dialer()?.connect_any().await?)
    }
}
