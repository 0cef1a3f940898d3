//! `cairnutl user add|get|list|delete|passwd|grant-role|revoke-role`: etcdctl 3.4's user
//! commands, with its arguments, password prompts, outputs, errors and exit codes.
//!
//! Arguments are counted here, not by clap, so a wrong number gets etcdctl's message and
//! exit 128. A password left out of `user add NAME` and `user passwd`'s is asked twice
//! ("Password of NAME: ", then "Type password of NAME again for confirmation: "), or read
//! from stdin with `--interactive=false`.

use cairn_client::prompt;
use cairn_proto::authpb::UserAddOptions;
use cairn_proto::etcdserverpb::{
    AuthRoleGetRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest,
    AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest, AuthUserListRequest,
    AuthUserRevokeRoleRequest,
};
use serde_json::Value;

use super::exit::{bad_args, exact_args};
use super::online::{
    auth_call, block_on, header_answer, header_obj, must_connect, print_bytes, print_out, put_list,
    rpc_error,
};
use crate::printer::Answer;

#[derive(clap::Subcommand)]
pub enum User {
    /// Adds a new user.
    Add {
        #[arg(value_name = "NAME[:PASSWORD]")]
        args: Vec<String>,
        #[command(flatten)]
        interactive: Interactive,
        /// Supply password from the command line flag.
        #[arg(long, value_name = "PASSWORD")]
        new_user_password: Option<String>,
        /// Create a user without password (CN based auth only).
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
              require_equals = true, default_missing_value = "true")]
        no_password: bool,
    },
    /// Deletes a user.
    Delete {
        #[arg(value_name = "NAME")]
        args: Vec<String>,
    },
    /// Gets detailed information of a user.
    Get {
        #[arg(value_name = "NAME")]
        args: Vec<String>,
        /// Show permissions of roles granted to the user.
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
              require_equals = true, default_missing_value = "true")]
        detail: bool,
    },
    /// Lists all users.
    List { args: Vec<String> },
    /// Changes password of user.
    Passwd {
        #[arg(value_name = "NAME")]
        args: Vec<String>,
        #[command(flatten)]
        interactive: Interactive,
    },
    /// Grants a role to a user.
    GrantRole {
        #[arg(value_name = "NAME ROLE")]
        args: Vec<String>,
    },
    /// Revokes a role from a user.
    RevokeRole {
        #[arg(value_name = "NAME ROLE")]
        args: Vec<String>,
    },
}

/// etcdctl's `--interactive` (a Go boolean: `--interactive=false`).
#[derive(clap::Args)]
pub struct Interactive {
    /// Ask for the password on the terminal; with --interactive=false it is read from stdin.
    #[arg(long = "interactive", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    on: bool,
}

pub fn run(u: User, g: &super::Global) -> anyhow::Result<()> {
    let answer = match u {
        User::Add {
            args,
            interactive,
            new_user_password,
            no_password,
        } => {
            let [arg] = exact_args(&args, "user add command requires user name as its argument")?;
            let (name, password) = if no_password {
                (arg.to_string(), String::new())
            } else if let Some(p) = new_user_password.filter(|p| !p.is_empty()) {
                (arg.to_string(), p)
            } else if let Some((name, p)) = arg.split_once(':') {
                if name.is_empty() {
                    return Err(bad_args("empty user name is not allowed"));
                }
                (name.to_string(), p.to_string())
            } else {
                (arg.to_string(), read_password(arg, &interactive)?)
            };
            let req = AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(UserAddOptions { no_password }),
                hashed_password: String::new(),
            };
            let r = auth_call(g, async |c| c.user_add(req).await)?;
            header_answer(format!("User {name} created\n"), r.header.as_ref())
        }
        User::Delete { args } => {
            let [name] = exact_args(
                &args,
                "user delete command requires user name as its argument",
            )?;
            let req = AuthUserDeleteRequest { name: name.into() };
            let r = auth_call(g, async |c| c.user_delete(req).await)?;
            header_answer(format!("User {name} deleted\n"), r.header.as_ref())
        }
        User::Get { args, detail } => {
            let [name] = exact_args(&args, "user get command requires user name as its argument")?;
            return get(name, detail, g);
        }
        User::List { args } => {
            exact_args::<0>(&args, "user list command requires no arguments")?;
            let r = auth_call(g, async |c| c.user_list(AuthUserListRequest {}).await)?;
            let mut json = header_obj(r.header.as_ref());
            put_list(&mut json, "users", strings(&r.users));
            Answer {
                simple: r
                    .users
                    .iter()
                    .map(|u| format!("{u}\n"))
                    .collect::<String>()
                    .into(),
                json: Value::Object(json),
                fields: None,
            }
        }
        User::Passwd { args, interactive } => {
            let [name] = exact_args(
                &args,
                "user passwd command requires user name as its argument",
            )?;
            let req = AuthUserChangePasswordRequest {
                name: name.into(),
                password: read_password(name, &interactive)?,
                hashed_password: String::new(),
            };
            let r = auth_call(g, async |c| c.user_change_password(req).await)?;
            header_answer("Password updated\n".into(), r.header.as_ref())
        }
        User::GrantRole { args } => {
            let msg = "user grant command requires user name and role name as its argument";
            let [user, role] = exact_args(&args, msg)?;
            let req = AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            };
            let r = auth_call(g, async |c| c.user_grant_role(req).await)?;
            header_answer(
                format!("Role {role} is granted to user {user}\n"),
                r.header.as_ref(),
            )
        }
        User::RevokeRole { args } => {
            let msg = "user revoke-role requires user name and role name as its argument";
            let [user, role] = exact_args(&args, msg)?;
            let req = AuthUserRevokeRoleRequest {
                name: user.into(),
                role: role.into(),
            };
            let r = auth_call(g, async |c| c.user_revoke_role(req).await)?;
            header_answer(
                format!("Role {role} is revoked from user {user}\n"),
                r.header.as_ref(),
            )
        }
    };
    print_bytes(&answer.render(g.format)?)
}

/// `user get`; with `--detail`, "User: NAME" and then each of its roles as `role get` prints
/// it, one connection for all the calls (a role that cannot be read ends it there).
fn get(name: &str, detail: bool, g: &super::Global) -> anyhow::Result<()> {
    block_on(async {
        let mut c = must_connect(g).await?.auth();
        let req = AuthUserGetRequest { name: name.into() };
        let r = c.user_get(req).await.map_err(rpc_error)?.into_inner();
        if !detail {
            return print_bytes(&user_answer(name, &r).render(g.format)?);
        }
        print_out(&format!("User: {name}\n"))?;
        for role in &r.roles {
            print_out("\n")?;
            let req = AuthRoleGetRequest { role: role.clone() };
            let rr = c.role_get(req).await.map_err(rpc_error)?.into_inner();
            print_bytes(&super::role::get_answer(role, &rr).render(g.format)?)?;
        }
        Ok(())
    })
}

fn user_answer(name: &str, r: &AuthUserGetResponse) -> Answer {
    let roles: String = r.roles.iter().map(|role| format!(" {role}")).collect();
    let mut json = header_obj(r.header.as_ref());
    put_list(&mut json, "roles", strings(&r.roles));
    Answer {
        simple: format!("User: {name}\nRoles:{roles}\n").into_bytes(),
        json: Value::Object(json),
        fields: None,
    }
}

pub(super) fn strings(v: &[String]) -> Vec<Value> {
    v.iter().map(|s| Value::from(s.as_str())).collect()
}

/// The password of `name`: typed twice (etcdctl's `readPasswordInteractive`), or the first
/// word on stdin with `--interactive=false` (etcdctl's `fmt.Scanf("%s")`, whose errors it
/// ignores: no input is the empty password).
fn read_password(name: &str, interactive: &Interactive) -> anyhow::Result<String> {
    if !interactive.on {
        return Ok(prompt::stdin_word().unwrap_or_default());
    }
    let ask =
        |p: String| prompt::ask(&p).map_err(|e| bad_args(format!("failed to ask password: {e}")));
    let first = ask(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(bad_args("empty password"));
    }
    if ask(format!("Type password of {name} again for confirmation: "))? != first {
        return Err(bad_args("given passwords are different"));
    }
    Ok(first)
}
