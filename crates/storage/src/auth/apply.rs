//! Applying an auth command, with etcd's rules (`auth/store.go`): what each request checks,
//! in etcd's order, what it changes, and when the auth revision moves. Users and roles are
//! written to their tables in the same redb transaction as the rest of the batch; the new
//! [`AuthView`] replaces the old one when the batch is applied.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use cairn_proto::authpb::{Permission, Role, User, UserAddOptions};
use cairn_proto::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse, AuthRoleDeleteResponse,
    AuthRoleGetResponse, AuthRoleGrantPermissionResponse, AuthRoleListResponse,
    AuthRoleRevokePermissionResponse, AuthUserAddResponse, AuthUserChangePasswordResponse,
    AuthUserDeleteResponse, AuthUserGetResponse, AuthUserGrantRoleResponse, AuthUserListResponse,
    AuthUserRevokeRoleResponse, AuthenticateResponse,
};
use prost::Message;

use super::ops::{AuthReply, AuthRequest, AuthResponse};
use super::tokens::{SimpleTokens, TokenInfo};
use super::view::{AuthView, ROOT};
use crate::backend::Tables;
use crate::command::RequestAuth;
use crate::error::{AuthError, Result};
use crate::locks::lock;
use crate::schema::{AUTH_ENABLED, AUTH_REVISION};

/// Applies `req` made by `who` (`None`: the server itself) to `view`, writing the change to
/// `tables`; returns the response and, when anything changed, the new view.
pub(crate) fn apply(
    view: &AuthView,
    tables: &mut Tables<'_>,
    tokens: &Mutex<SimpleTokens>,
    req: &AuthRequest,
    who: Option<&RequestAuth>,
    now: Instant,
) -> Result<(AuthResponse, Option<AuthView>)> {
    if let Some(who) = who {
        admin_check(view, req, who)?;
    }
    let mut c = Change::new(view);
    let response = match req {
        AuthRequest::Enable(_) => {
            let root = c.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
            if !root.roles.iter().any(|r| r == ROOT) {
                return Err(AuthError::RootRoleNotExist.into());
            }
            // enabling twice is not an error, and does not move the revision
            c.enabled = true;
            AuthResponse::Enable(AuthEnableResponse::default())
        }
        AuthRequest::Disable(_) => {
            c.enabled = false;
            c.bump();
            lock(tokens).clear();
            AuthResponse::Disable(AuthDisableResponse::default())
        }
        AuthRequest::Authenticate(a) => {
            if !view.enabled {
                return Err(AuthError::AuthNotEnabled.into());
            }
            let user = view.user(&a.name).ok_or(AuthError::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(AuthError::NoPasswordUser.into());
            }
            let info = TokenInfo {
                user: a.name.clone(),
                revision: view.revision,
            };
            lock(tokens).insert(a.simple_token.clone(), info, now);
            return Ok((
                AuthResponse::Authenticate(AuthenticateResponse {
                    header: None,
                    token: a.simple_token.clone(),
                }),
                None,
            ));
        }
        AuthRequest::UserAdd(r) => {
            if r.name.is_empty() {
                return Err(AuthError::UserEmpty.into());
            }
            if c.users.contains_key(&r.name) {
                return Err(AuthError::UserAlreadyExist.into());
            }
            let options = r.options.unwrap_or(UserAddOptions { no_password: false });
            let password = if options.no_password {
                Vec::new()
            } else {
                r.hashed_password.as_bytes().to_vec()
            };
            c.users.insert(
                r.name.clone(),
                User {
                    name: r.name.as_bytes().to_vec(),
                    password,
                    roles: Vec::new(),
                    options: Some(options),
                },
            );
            c.bump();
            AuthResponse::UserAdd(AuthUserAddResponse::default())
        }
        AuthRequest::UserDelete(r) => {
            if c.enabled && r.name == ROOT {
                return Err(AuthError::InvalidAuthMgmt.into());
            }
            c.users.remove(&r.name).ok_or(AuthError::UserNotFound)?;
            c.bump();
            lock(tokens).invalidate_user(&r.name);
            AuthResponse::UserDelete(AuthUserDeleteResponse::default())
        }
        AuthRequest::UserChangePassword(r) => {
            let user = c.users.get_mut(&r.name).ok_or(AuthError::UserNotFound)?;
            user.password = r.hashed_password.as_bytes().to_vec();
            c.bump();
            lock(tokens).invalidate_user(&r.name);
            AuthResponse::UserChangePassword(AuthUserChangePasswordResponse::default())
        }
        AuthRequest::UserGrantRole(r) => {
            if !c.users.contains_key(&r.user) {
                return Err(AuthError::UserNotFound.into());
            }
            if r.role != ROOT && !c.roles.contains_key(&r.role) {
                return Err(AuthError::RoleNotFound.into());
            }
            let user = c.users.get_mut(&r.user).expect("checked above");
            match user.roles.binary_search(&r.role) {
                // granted already: etcd ignores it (no revision change)
                Ok(_) => {
                    return Ok((
                        AuthResponse::UserGrantRole(AuthUserGrantRoleResponse::default()),
                        None,
                    ));
                }
                Err(i) => user.roles.insert(i, r.role.clone()),
            }
            c.bump();
            AuthResponse::UserGrantRole(AuthUserGrantRoleResponse::default())
        }
        AuthRequest::UserRevokeRole(r) => {
            if c.enabled && r.name == ROOT && r.role == ROOT {
                return Err(AuthError::InvalidAuthMgmt.into());
            }
            let user = c.users.get_mut(&r.name).ok_or(AuthError::UserNotFound)?;
            let i = user
                .roles
                .iter()
                .position(|x| *x == r.role)
                .ok_or(AuthError::RoleNotGranted)?;
            user.roles.remove(i);
            c.bump();
            AuthResponse::UserRevokeRole(AuthUserRevokeRoleResponse::default())
        }
        AuthRequest::UserGet(r) => {
            let user = view.user(&r.name).ok_or(AuthError::UserNotFound)?;
            return Ok((
                AuthResponse::UserGet(AuthUserGetResponse {
                    header: None,
                    roles: user.roles.clone(),
                }),
                None,
            ));
        }
        AuthRequest::UserList(_) => {
            let users = view
                .users()
                .map(|u| String::from_utf8_lossy(&u.name).into_owned())
                .collect();
            return Ok((
                AuthResponse::UserList(AuthUserListResponse {
                    header: None,
                    users,
                }),
                None,
            ));
        }
        AuthRequest::RoleAdd(r) => {
            if r.name.is_empty() {
                return Err(AuthError::RoleEmpty.into());
            }
            if c.roles.contains_key(&r.name) {
                return Err(AuthError::RoleAlreadyExist.into());
            }
            c.roles.insert(
                r.name.clone(),
                Role {
                    name: r.name.as_bytes().to_vec(),
                    key_permission: Vec::new(),
                },
            );
            c.bump();
            AuthResponse::RoleAdd(AuthRoleAddResponse::default())
        }
        AuthRequest::RoleDelete(r) => {
            if c.enabled && r.role == ROOT {
                return Err(AuthError::InvalidAuthMgmt.into());
            }
            c.roles.remove(&r.role).ok_or(AuthError::RoleNotFound)?;
            // etcd revokes the role from every user that holds it
            for user in c.users.values_mut() {
                user.roles.retain(|x| *x != r.role);
            }
            c.bump();
            AuthResponse::RoleDelete(AuthRoleDeleteResponse::default())
        }
        AuthRequest::RoleGrantPermission(r) => {
            let role = c.roles.get_mut(&r.name).ok_or(AuthError::RoleNotFound)?;
            let perm = r.perm.clone().ok_or(AuthError::PermissionNotGiven)?;
            // etcd keeps permissions sorted by key; one with the same range changes its type
            let i = role
                .key_permission
                .partition_point(|p| p.key.as_slice() < perm.key.as_slice());
            match role.key_permission.get_mut(i) {
                Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                    p.perm_type = perm.perm_type
                }
                _ => role.key_permission.insert(i, perm),
            }
            c.bump();
            AuthResponse::RoleGrantPermission(AuthRoleGrantPermissionResponse::default())
        }
        AuthRequest::RoleRevokePermission(r) => {
            let role = c.roles.get_mut(&r.role).ok_or(AuthError::RoleNotFound)?;
            let i = role
                .key_permission
                .iter()
                .position(|p: &Permission| p.key == r.key && p.range_end == r.range_end)
                .ok_or(AuthError::PermissionNotGranted)?;
            role.key_permission.remove(i);
            c.bump();
            AuthResponse::RoleRevokePermission(AuthRoleRevokePermissionResponse::default())
        }
        AuthRequest::RoleGet(r) => {
            let role = view.role(&r.role).ok_or(AuthError::RoleNotFound)?;
            return Ok((
                AuthResponse::RoleGet(AuthRoleGetResponse {
                    header: None,
                    perm: role.key_permission.clone(),
                }),
                None,
            ));
        }
        AuthRequest::RoleList(_) => {
            let roles = view
                .roles()
                .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                .collect();
            return Ok((
                AuthResponse::RoleList(AuthRoleListResponse {
                    header: None,
                    roles,
                }),
                None,
            ));
        }
    };
    let new = c.write(view, tables)?;
    Ok((response, Some(new)))
}

/// etcd's `needAdminPermission`: every auth request but Authenticate needs the root role,
/// except reading your own user and the roles you hold.
fn admin_check(view: &AuthView, req: &AuthRequest, who: &RequestAuth) -> Result<(), AuthError> {
    let own = match req {
        AuthRequest::Authenticate(_) => return Ok(()),
        AuthRequest::UserGet(r) => r.name == who.user,
        AuthRequest::RoleGet(r) => view
            .user(&who.user)
            .is_some_and(|u| u.roles.contains(&r.role)),
        _ => false,
    };
    match view.check_admin(who) {
        Err(_) if own => Ok(()),
        other => other,
    }
}

/// A working copy of the auth state for one command.
struct Change {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

impl Change {
    fn new(view: &AuthView) -> Change {
        let (users, roles) = view.clone().into_parts();
        Change {
            enabled: view.enabled,
            revision: view.revision,
            users,
            roles,
        }
    }

    /// etcd's `commitRevision`.
    fn bump(&mut self) {
        self.revision += 1;
    }

    /// Writes what differs from `old` and returns the new view.
    fn write(self, old: &AuthView, tables: &mut Tables<'_>) -> Result<AuthView> {
        for (name, user) in &self.users {
            if old.user(name) != Some(user) {
                tables.users.insert(name, &user.encode_to_vec())?;
            }
        }
        for gone in old
            .users()
            .map(|u| String::from_utf8_lossy(&u.name).into_owned())
        {
            if !self.users.contains_key(&gone) {
                tables.users.remove(&gone)?;
            }
        }
        for (name, role) in &self.roles {
            if old.role(name) != Some(role) {
                tables.roles.insert(name, &role.encode_to_vec())?;
            }
        }
        for gone in old
            .roles()
            .map(|r| String::from_utf8_lossy(&r.name).into_owned())
        {
            if !self.roles.contains_key(&gone) {
                tables.roles.remove(&gone)?;
            }
        }
        let enabled = [u8::from(self.enabled)];
        tables.meta.insert(AUTH_ENABLED, &enabled)?;
        tables
            .meta
            .insert(AUTH_REVISION, &self.revision.to_be_bytes())?;
        Ok(AuthView::new(
            self.enabled,
            self.revision,
            self.users,
            self.roles,
        ))
    }
}

/// The reply as a command response.
pub(crate) fn reply(r: AuthResponse) -> AuthReply {
    AuthReply { response: Some(r) }
}
