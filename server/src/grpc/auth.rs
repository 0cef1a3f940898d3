//! The Auth service: users, roles, permissions, the auth switch and tokens, with etcd's
//! semantics. Every change goes through raft (`cairn_storage::auth`), where the root-role
//! check is made; passwords are hashed with bcrypt (`--bcrypt-cost`) here, before the
//! command is proposed, and checked here at Authenticate, off the async threads (bcrypt is
//! slow on purpose: about 50 ms at cost 10).

use cairn_proto::etcdserverpb::auth_server::Auth;
use cairn_proto::etcdserverpb::*;
use cairn_storage::command::{AuthOp, AuthRequest, AuthResponse, InternalAuthenticate};
use cairn_storage::{AuthError, CommandResponse, Op};
use tonic::{Request, Response, Status};

use crate::context::Context;
use crate::errors::ApiError;
use crate::tokens::Tokens;

pub struct AuthService(pub Context);

impl AuthService {
    /// Proposes one auth request for `req`'s user and returns its response.
    async fn run<T>(&self, req: &Request<T>, r: AuthRequest) -> Result<AuthResponse, ApiError> {
        let ctx = self.0.acting_for(req)?;
        let applied = ctx
            .write(cairn_storage::Command::new(
                Op::Auth(AuthOp { request: Some(r) }),
                ctx.who.clone(),
            ))
            .await?;
        let CommandResponse::Auth(reply) = applied else {
            return Err(ApiError::Stopped(format!(
                "unexpected apply result {applied:?}"
            )));
        };
        let mut response = reply
            .response
            .ok_or_else(|| ApiError::Stopped("an auth command without a response".into()))?;
        self.0.fill(response.header());
        Ok(response)
    }

    /// bcrypt at `--bcrypt-cost`, on a blocking thread.
    async fn hash(&self, password: String) -> Result<String, ApiError> {
        let cost = self.0.config.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| ApiError::Stopped(e.to_string()))?
            .map_err(|e| ApiError::Stopped(format!("bcrypt: {e}")))
    }
}

/// Unwraps the response variant a request produces.
macro_rules! expect {
    ($resp:expr, $variant:ident) => {
        match $resp {
            AuthResponse::$variant(r) => Ok(Response::new(r)),
            other => Err(Status::internal(format!(
                "unexpected auth response {other:?}"
            ))),
        }
    };
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let r = self.run(&req, AuthRequest::Enable(*req.get_ref())).await?;
        expect!(r, Enable)
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let r = self.run(&req, AuthRequest::Disable(*req.get_ref())).await?;
        expect!(r, Disable)
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::UserGet(req.get_ref().clone()))
            .await?;
        expect!(r, UserGet)
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::UserList(*req.get_ref()))
            .await?;
        expect!(r, UserList)
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::UserDelete(req.get_ref().clone()))
            .await?;
        expect!(r, UserDelete)
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::UserGrantRole(req.get_ref().clone()))
            .await?;
        expect!(r, UserGrantRole)
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::UserRevokeRole(req.get_ref().clone()))
            .await?;
        expect!(r, UserRevokeRole)
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::RoleAdd(req.get_ref().clone()))
            .await?;
        expect!(r, RoleAdd)
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::RoleGet(req.get_ref().clone()))
            .await?;
        expect!(r, RoleGet)
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::RoleList(*req.get_ref()))
            .await?;
        expect!(r, RoleList)
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let r = self
            .run(&req, AuthRequest::RoleDelete(req.get_ref().clone()))
            .await?;
        expect!(r, RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let r = self
            .run(
                &req,
                AuthRequest::RoleGrantPermission(req.get_ref().clone()),
            )
            .await?;
        expect!(r, RoleGrantPermission)
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let r = self
            .run(
                &req,
                AuthRequest::RoleRevokePermission(req.get_ref().clone()),
            )
            .await?;
        expect!(r, RoleRevokePermission)
    }

    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        // etcd 3.5 applies AuthStatus with the admin check (`needAdminPermission`)
        self.0.acting_for(&req)?.check_admin()?;
        let view = self.0.read(false, |s| Ok(s.auth())).await?;
        Ok(Response::new(AuthStatusResponse {
            header: self.0.header(self.0.store.current_revision()),
            enabled: view.enabled,
            auth_revision: view.revision,
        }))
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let r = req.get_ref().clone();
        // etcd's CheckPassword, before anything is proposed
        let view = self.0.store.auth();
        if !view.enabled {
            return Err(ApiError::from(AuthError::AuthNotEnabled).into());
        }
        let user = view
            .user(&r.name)
            .ok_or(ApiError::from(AuthError::AuthFailed))?;
        if user.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(ApiError::from(AuthError::NoPasswordUser).into());
        }
        let hash = String::from_utf8_lossy(&user.password).into_owned();
        let password = r.password.clone();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        if !ok {
            return Err(ApiError::from(AuthError::AuthFailed).into());
        }
        if !self.0.tokens.is_simple() {
            // a JWT is stateless: signed with the revision every member agrees on now
            let view = self.0.read(false, |s| Ok(s.auth())).await?;
            if view.user(&r.name).is_none() {
                return Err(ApiError::from(AuthError::AuthFailed).into());
            }
            let token = self
                .0
                .tokens
                .jwt(&r.name, view.revision)
                .map_err(ApiError::from)?;
            return Ok(Response::new(AuthenticateResponse {
                header: self.0.header(self.0.store.current_revision()),
                token,
            }));
        }
        let internal = InternalAuthenticate {
            name: r.name,
            simple_token: Tokens::simple_token(),
        };
        let resp = self.run(&req, AuthRequest::Authenticate(internal)).await?;
        expect!(resp, Authenticate)
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut r = req.get_ref().clone();
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        if !no_password && r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let resp = self.run(&req, AuthRequest::UserAdd(r)).await?;
        expect!(resp, UserAdd)
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut r = req.get_ref().clone();
        if r.hashed_password.is_empty() {
            r.hashed_password = self.hash(std::mem::take(&mut r.password)).await?;
        }
        r.password.clear();
        let resp = self.run(&req, AuthRequest::UserChangePassword(r)).await?;
        expect!(resp, UserChangePassword)
    }
}
