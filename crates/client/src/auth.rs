//! What etcdctl's auth commands do beyond a single call.

use cairn_proto::etcdserverpb::{
    AuthEnableRequest, AuthEnableResponse, AuthRoleAddRequest, AuthUserGrantRoleRequest,
};

use crate::session::Client;

/// etcd's answer to AuthEnable while user `root` lacks role `root`
/// (`rpctypes.ErrRootRoleNotExist`).
pub const ROOT_ROLE_MISSING: &str = "etcdserver: root user does not have root role";

/// `etcdctl auth enable`: AuthEnable, and while etcd answers that user `root` lacks role
/// `root`, add that role, grant it to `root` and try again. As etcdctl, an existing but
/// ungranted `root` role fails the role add ("role name already exists"), and any other
/// error ends it.
pub async fn enable(c: &Client) -> Result<AuthEnableResponse, tonic::Status> {
    let mut auth = c.auth();
    loop {
        match auth.auth_enable(AuthEnableRequest {}).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.message() == ROOT_ROLE_MISSING => {
                let role = AuthRoleAddRequest {
                    name: "root".into(),
                };
                auth.role_add(role).await?;
                let grant = AuthUserGrantRoleRequest {
                    user: "root".into(),
                    role: "root".into(),
                };
                auth.user_grant_role(grant).await?;
            }
            Err(s) => return Err(s),
        }
    }
}
