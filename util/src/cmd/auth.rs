//! `cairnutl auth enable|disable|status`: etcdctl's auth commands. `enable` and `disable`
//! print their one line whatever `-w` says, as etcdctl does; `enable` creates and grants
//! role `root` when user `root` lacks it ([`cairn_client::auth::enable`]). `status` is
//! etcdctl 3.5's (3.4 has none).

use cairn_proto::etcdserverpb::{AuthDisableRequest, AuthStatusRequest};
use serde_json::Value;

use super::exit::exact_args;
use super::online::{
    auth_call, block_on, header_obj, must_connect, print_bytes, print_out, put_bool, put_uint,
    rpc_error,
};
use crate::printer::Answer;

#[derive(clap::Subcommand)]
pub enum Auth {
    /// Enables authentication.
    Enable { args: Vec<String> },
    /// Disables authentication (with --data-dir: in a stopped member's data dir, offline).
    Disable {
        args: Vec<String>,
        /// A stopped member's data dir: turn auth off there without a server, the way back
        /// in when the root password is lost. Run it on every member's data dir while all
        /// are stopped, then start them, set a new root password and `auth enable`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Returns authentication status.
    Status { args: Vec<String> },
}

pub fn run(a: Auth, g: &super::Global) -> anyhow::Result<()> {
    match a {
        Auth::Enable { args } => {
            exact_args::<0>(&args, "auth enable command does not accept any arguments")?;
            block_on(async {
                let c = must_connect(g).await?;
                cairn_client::auth::enable(&c).await.map_err(rpc_error)
            })?;
            print_out("Authentication Enabled\n")
        }
        Auth::Disable {
            args,
            data_dir: Some(dir),
        } => {
            exact_args::<0>(&args, "auth disable command does not accept any arguments")?;
            let done = cairn_storage::offline::disable_auth(&dir)?;
            let state = if done.was_enabled {
                "Authentication Disabled"
            } else {
                "Authentication was already disabled"
            };
            print_out(&format!(
                "{state} in {} (auth revision {})\n",
                dir.display(),
                done.revision
            ))
        }
        Auth::Disable {
            args,
            data_dir: None,
        } => {
            exact_args::<0>(&args, "auth disable command does not accept any arguments")?;
            auth_call(g, async |c| c.auth_disable(AuthDisableRequest {}).await)?;
            print_out("Authentication Disabled\n")
        }
        Auth::Status { args } => {
            exact_args::<0>(&args, "auth status command does not accept any arguments")?;
            let r = auth_call(g, async |c| c.auth_status(AuthStatusRequest {}).await)?;
            let mut json = header_obj(r.header.as_ref());
            put_bool(&mut json, "enabled", r.enabled);
            put_uint(&mut json, "authRevision", r.auth_revision);
            let simple = format!(
                "Authentication Status: {}\nAuthRevision: {}\n",
                r.enabled, r.auth_revision
            );
            let answer = Answer {
                simple: simple.into_bytes(),
                json: Value::Object(json),
                fields: None,
            };
            print_bytes(&answer.render(g.format)?)
        }
    }
}
