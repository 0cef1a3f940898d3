//! `cairnutl role add|get|list|delete|grant-permission|revoke-permission`: etcdctl 3.4's role
//! commands, with its arguments (counted here: etcdctl's messages, exit 128), outputs and
//! errors. What a key range means and how it prints is [`super::perm`]'s.

use cairn_proto::authpb::Permission;
use cairn_proto::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleListRequest, AuthRoleRevokePermissionRequest,
};
use serde_json::Value;

use super::exit::{bad_args, exact_args, min_args};
use super::online::{auth_call, fields_header, header_answer, header_obj, print_bytes, put_list};
use super::perm::{parse_type, perm_fields, perm_json, perm_range, revoked_line, role_listing};
use super::user::strings;
use crate::printer::{Answer, go_quote};

#[derive(clap::Subcommand)]
pub enum Role {
    /// Adds a new role.
    Add {
        #[arg(value_name = "ROLE")]
        args: Vec<String>,
    },
    /// Deletes a role.
    Delete {
        #[arg(value_name = "ROLE")]
        args: Vec<String>,
    },
    /// Gets detailed information of a role.
    Get {
        #[arg(value_name = "ROLE")]
        args: Vec<String>,
    },
    /// Lists all roles.
    List { args: Vec<String> },
    /// Grants a key to a role: ROLE {read|write|readwrite} KEY [RANGE_END].
    GrantPermission {
        #[arg(value_name = "ROLE TYPE KEY [RANGE_END]")]
        args: Vec<String>,
        #[command(flatten)]
        range: RangeFlags,
    },
    /// Revokes a key from a role: ROLE KEY [RANGE_END].
    RevokePermission {
        #[arg(value_name = "ROLE KEY [RANGE_END]")]
        args: Vec<String>,
        #[command(flatten)]
        range: RangeFlags,
    },
}

#[derive(clap::Args)]
pub struct RangeFlags {
    /// The permission is on every key with the prefix KEY.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    prefix: bool,
    /// The permission is on every key greater than or equal to KEY (byte compare).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    from_key: bool,
}

pub fn run(r: Role, g: &super::Global) -> anyhow::Result<()> {
    let answer = match r {
        Role::Add { args } => {
            let [name] = exact_args(&args, "role add command requires role name as its argument")?;
            let req = AuthRoleAddRequest { name: name.into() };
            let r = auth_call(g, async |c| c.role_add(req).await)?;
            header_answer(format!("Role {name} created\n"), r.header.as_ref())
        }
        Role::Delete { args } => {
            let [name] = exact_args(
                &args,
                "role delete command requires role name as its argument",
            )?;
            let req = AuthRoleDeleteRequest { role: name.into() };
            let r = auth_call(g, async |c| c.role_delete(req).await)?;
            header_answer(format!("Role {name} deleted\n"), r.header.as_ref())
        }
        Role::Get { args } => {
            let [name] = exact_args(&args, "role get command requires role name as its argument")?;
            let req = AuthRoleGetRequest { role: name.into() };
            let r = auth_call(g, async |c| c.role_get(req).await)?;
            get_answer(name, &r)
        }
        Role::List { args } => {
            exact_args::<0>(&args, "role list command requires no arguments")?;
            let r = auth_call(g, async |c| c.role_list(AuthRoleListRequest {}).await)?;
            let mut json = header_obj(r.header.as_ref());
            put_list(&mut json, "roles", strings(&r.roles));
            let quoted: String = r
                .roles
                .iter()
                .map(|r| format!(" {}", go_quote(r.as_bytes())))
                .collect();
            Answer {
                simple: r
                    .roles
                    .iter()
                    .map(|r| format!("{r}\n"))
                    .collect::<String>()
                    .into(),
                json: Value::Object(json),
                fields: Some(
                    format!("{}\"Roles\" :{quoted}\n", fields_header(r.header.as_ref())).into(),
                ),
            }
        }
        Role::GrantPermission { args, range } => {
            let msg = "role grant command requires role name, permission type, and key [endkey] as its argument";
            min_args(&args, 3, msg)?;
            let perm_type = parse_type(&args[1]).map_err(bad_args)?;
            let (key, range_end) =
                perm_range(&args[2..], range.prefix, range.from_key).map_err(bad_args)?;
            let req = AuthRoleGrantPermissionRequest {
                name: args[0].clone(),
                perm: Some(Permission {
                    perm_type: perm_type.into(),
                    key,
                    range_end,
                }),
            };
            let r = auth_call(g, async |c| c.role_grant_permission(req).await)?;
            header_answer(format!("Role {} updated\n", args[0]), r.header.as_ref())
        }
        Role::RevokePermission { args, range } => {
            let msg = "role revoke-permission command requires role name and key [endkey] as its argument";
            min_args(&args, 2, msg)?;
            let (key, range_end) =
                perm_range(&args[1..], range.prefix, range.from_key).map_err(bad_args)?;
            let line = revoked_line(&args[0], &args[1], &range_end);
            let req = AuthRoleRevokePermissionRequest {
                role: args[0].clone(),
                key,
                range_end,
            };
            let r = auth_call(g, async |c| c.role_revoke_permission(req).await)?;
            Answer {
                simple: line,
                ..header_answer(String::new(), r.header.as_ref())
            }
        }
    };
    print_bytes(&answer.render(g.format)?)
}

/// `role get`'s answer (also `user get --detail`'s, for each role).
pub(super) fn get_answer(name: &str, r: &AuthRoleGetResponse) -> Answer {
    let mut json = header_obj(r.header.as_ref());
    put_list(&mut json, "perm", r.perm.iter().map(perm_json).collect());
    let mut fields = fields_header(r.header.as_ref());
    r.perm.iter().for_each(|p| fields.push_str(&perm_fields(p)));
    Answer {
        simple: role_listing(name, &r.perm),
        json: Value::Object(json),
        fields: Some(fields.into_bytes()),
    }
}
