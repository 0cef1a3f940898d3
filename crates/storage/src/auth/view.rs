//! The auth state as every check reads it: the switch, the auth revision, users, roles, and
//! each user's grants merged per kind. Immutable: a change builds a new view, so a check never
//! waits for an apply (readers take an `Arc`).

use std::collections::{BTreeMap, HashMap};

use cairn_proto::authpb::permission::Type as PermType;
use cairn_proto::authpb::{Role, User};

use super::perms::{Interval, Merged};
use crate::command::RequestAuth;
use crate::error::AuthError;

/// etcd's root user and role names.
pub const ROOT: &str = "root";

/// What a request needs of a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

#[derive(Debug, Clone, Default)]
struct UserPerms {
    root: bool,
    read: Merged,
    write: Merged,
}

#[derive(Debug, Clone)]
pub struct AuthView {
    pub enabled: bool,
    /// etcd's `authRevision`: 1 on a fresh store, +1 at every user or role change and at
    /// every disable.
    pub revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    merged: HashMap<String, UserPerms>,
}

impl Default for AuthView {
    fn default() -> Self {
        AuthView::new(false, 1, BTreeMap::new(), BTreeMap::new())
    }
}

impl AuthView {
    pub fn new(
        enabled: bool,
        revision: u64,
        users: BTreeMap<String, User>,
        roles: BTreeMap<String, Role>,
    ) -> AuthView {
        let merged = users
            .iter()
            .map(|(name, u)| (name.clone(), merge(u, &roles)))
            .collect();
        AuthView {
            enabled,
            revision,
            users,
            roles,
            merged,
        }
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    pub(crate) fn into_parts(self) -> (BTreeMap<String, User>, BTreeMap<String, Role>) {
        (self.users, self.roles)
    }

    /// Whether `user` exists and holds the root role.
    pub fn is_root(&self, user: &str) -> bool {
        self.merged.get(user).is_some_and(|p| p.root)
    }

    /// etcd's `isOpPermitted`: may `who` do `need` on `[key, range_end)` (etcd's range
    /// encoding, see `perms`)?
    pub fn check(
        &self,
        who: &RequestAuth,
        key: &[u8],
        range_end: &[u8],
        need: Need,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        // revision 0: the request carried no user at all
        if who.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        let Some(p) = self.merged.get(&who.user) else {
            return Err(AuthError::PermissionDenied);
        };
        let allowed = p.root
            || match need {
                Need::Read => p.read.allows(key, range_end),
                Need::Write => p.write.allows(key, range_end),
            };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// etcd's `IsAdminPermitted`: `who` must hold the root role (no revision check).
    pub fn check_admin(&self, who: &RequestAuth) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if who.user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        match self.merged.get(&who.user) {
            None => Err(AuthError::UserNotFound),
            Some(p) if p.root => Ok(()),
            Some(_) => Err(AuthError::PermissionDenied),
        }
    }
}

fn merge(user: &User, roles: &BTreeMap<String, Role>) -> UserPerms {
    let (mut read, mut write) = (Vec::new(), Vec::new());
    let mut root = false;
    for name in &user.roles {
        if name == ROOT {
            root = true;
        }
        let Some(role) = roles.get(name) else {
            continue;
        };
        for p in &role.key_permission {
            let ivl = Interval::of_grant(&p.key, &p.range_end);
            match PermType::try_from(p.perm_type).unwrap_or(PermType::Read) {
                PermType::Read => read.push(ivl),
                PermType::Write => write.push(ivl),
                PermType::Readwrite => {
                    read.push(ivl.clone());
                    write.push(ivl);
                }
            }
        }
    }
    UserPerms {
        root,
        read: Merged::new(read),
        write: Merged::new(write),
    }
}

#[cfg(test)]
mod tests {
    use cairn_proto::authpb::Permission;

    use super::*;

    fn view(enabled: bool) -> AuthView {
        let mut users = BTreeMap::new();
        let user = |name: &str, roles: &[&str]| User {
            name: name.as_bytes().to_vec(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        users.insert("root".into(), user("root", &["root"]));
        users.insert("alice".into(), user("alice", &["reader", "writer"]));
        let mut roles = BTreeMap::new();
        let perm = |t: PermType, k: &str, e: &str| Permission {
            perm_type: t as i32,
            key: k.into(),
            range_end: e.into(),
        };
        roles.insert(
            "root".into(),
            Role {
                name: b"root".to_vec(),
                key_permission: vec![],
            },
        );
        roles.insert(
            "reader".into(),
            Role {
                name: b"reader".to_vec(),
                key_permission: vec![perm(PermType::Read, "a", "c")],
            },
        );
        roles.insert(
            "writer".into(),
            Role {
                name: b"writer".to_vec(),
                key_permission: vec![perm(PermType::Readwrite, "b", "")],
            },
        );
        AuthView::new(enabled, 5, users, roles)
    }

    fn who(user: &str, revision: u64) -> RequestAuth {
        RequestAuth {
            user: user.into(),
            revision,
        }
    }

    #[test]
    fn checks_follow_etcd() {
        let v = view(true);
        assert_eq!(v.check(&who("alice", 5), b"a1", b"", Need::Read), Ok(()));
        assert_eq!(
            v.check(&who("alice", 5), b"a1", b"", Need::Write),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(v.check(&who("alice", 5), b"b", b"", Need::Write), Ok(()));
        assert_eq!(
            v.check(&who("alice", 4), b"a1", b"", Need::Read),
            Err(AuthError::AuthOldRevision)
        );
        assert_eq!(
            v.check(&who("", 0), b"a1", b"", Need::Read),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(
            v.check(&who("mallory", 5), b"a1", b"", Need::Read),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(v.check(&who("root", 5), b"zz", b"\0", Need::Write), Ok(()));
        assert_eq!(v.check_admin(&who("root", 1)), Ok(()));
        assert_eq!(
            v.check_admin(&who("alice", 5)),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(
            v.check_admin(&who("ghost", 5)),
            Err(AuthError::UserNotFound)
        );
        assert_eq!(v.check_admin(&who("", 0)), Err(AuthError::UserEmpty));
        let off = view(false);
        assert_eq!(off.check(&who("", 0), b"x", b"", Need::Write), Ok(()));
        assert_eq!(off.check_admin(&who("", 0)), Ok(()));
    }
}
