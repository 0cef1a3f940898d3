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
    /// Disables authentication.
    Disable { args: Vec<String> },
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
        Auth::Disable { args } => {
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
