//! What an auth command carries through raft and what applying it returns: etcd's own
//! request and response messages in a oneof each (etcd's `InternalRaftRequest` fields).
//! Passwords travel only as bcrypt hashes (`hashedPassword`): the member that took the
//! request hashed them, as etcd's API layer does.

use cairn_proto::etcdserverpb::{
    AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse,
    AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest, AuthRoleDeleteResponse,
    AuthRoleGetRequest, AuthRoleGetResponse, AuthRoleGrantPermissionRequest,
    AuthRoleGrantPermissionResponse, AuthRoleListRequest, AuthRoleListResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthUserAddRequest,
    AuthUserAddResponse, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse,
    AuthUserDeleteRequest, AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse,
    AuthUserGrantRoleRequest, AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateResponse, ResponseHeader,
};

#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthOp {
    #[prost(
        oneof = "AuthRequest",
        tags = "1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17"
    )]
    pub request: Option<AuthRequest>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AuthRequest {
    #[prost(message, tag = "1")]
    Enable(AuthEnableRequest),
    #[prost(message, tag = "2")]
    Disable(AuthDisableRequest),
    #[prost(message, tag = "4")]
    Authenticate(InternalAuthenticate),
    #[prost(message, tag = "5")]
    UserAdd(AuthUserAddRequest),
    #[prost(message, tag = "6")]
    UserGet(AuthUserGetRequest),
    #[prost(message, tag = "7")]
    UserList(AuthUserListRequest),
    #[prost(message, tag = "8")]
    UserDelete(AuthUserDeleteRequest),
    #[prost(message, tag = "9")]
    UserChangePassword(AuthUserChangePasswordRequest),
    #[prost(message, tag = "10")]
    UserGrantRole(AuthUserGrantRoleRequest),
    #[prost(message, tag = "11")]
    UserRevokeRole(AuthUserRevokeRoleRequest),
    #[prost(message, tag = "12")]
    RoleAdd(AuthRoleAddRequest),
    #[prost(message, tag = "13")]
    RoleGet(AuthRoleGetRequest),
    #[prost(message, tag = "14")]
    RoleList(AuthRoleListRequest),
    #[prost(message, tag = "15")]
    RoleDelete(AuthRoleDeleteRequest),
    #[prost(message, tag = "16")]
    RoleGrantPermission(AuthRoleGrantPermissionRequest),
    #[prost(message, tag = "17")]
    RoleRevokePermission(AuthRoleRevokePermissionRequest),
}

/// etcd's `InternalAuthenticateRequest`: the password was checked by the member that took
/// the request; applying it registers the simple token on every member.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalAuthenticate {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub simple_token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthReply {
    #[prost(
        oneof = "AuthResponse",
        tags = "1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17"
    )]
    pub response: Option<AuthResponse>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AuthResponse {
    #[prost(message, tag = "1")]
    Enable(AuthEnableResponse),
    #[prost(message, tag = "2")]
    Disable(AuthDisableResponse),
    #[prost(message, tag = "4")]
    Authenticate(AuthenticateResponse),
    #[prost(message, tag = "5")]
    UserAdd(AuthUserAddResponse),
    #[prost(message, tag = "6")]
    UserGet(AuthUserGetResponse),
    #[prost(message, tag = "7")]
    UserList(AuthUserListResponse),
    #[prost(message, tag = "8")]
    UserDelete(AuthUserDeleteResponse),
    #[prost(message, tag = "9")]
    UserChangePassword(AuthUserChangePasswordResponse),
    #[prost(message, tag = "10")]
    UserGrantRole(AuthUserGrantRoleResponse),
    #[prost(message, tag = "11")]
    UserRevokeRole(AuthUserRevokeRoleResponse),
    #[prost(message, tag = "12")]
    RoleAdd(AuthRoleAddResponse),
    #[prost(message, tag = "13")]
    RoleGet(AuthRoleGetResponse),
    #[prost(message, tag = "14")]
    RoleList(AuthRoleListResponse),
    #[prost(message, tag = "15")]
    RoleDelete(AuthRoleDeleteResponse),
    #[prost(message, tag = "16")]
    RoleGrantPermission(AuthRoleGrantPermissionResponse),
    #[prost(message, tag = "17")]
    RoleRevokePermission(AuthRoleRevokePermissionResponse),
}

impl AuthResponse {
    /// The response's header, for the server to fill.
    pub fn header(&mut self) -> &mut Option<ResponseHeader> {
        match self {
            AuthResponse::Enable(r) => &mut r.header,
            AuthResponse::Disable(r) => &mut r.header,
            AuthResponse::Authenticate(r) => &mut r.header,
            AuthResponse::UserAdd(r) => &mut r.header,
            AuthResponse::UserGet(r) => &mut r.header,
            AuthResponse::UserList(r) => &mut r.header,
            AuthResponse::UserDelete(r) => &mut r.header,
            AuthResponse::UserChangePassword(r) => &mut r.header,
            AuthResponse::UserGrantRole(r) => &mut r.header,
            AuthResponse::UserRevokeRole(r) => &mut r.header,
            AuthResponse::RoleAdd(r) => &mut r.header,
            AuthResponse::RoleGet(r) => &mut r.header,
            AuthResponse::RoleList(r) => &mut r.header,
            AuthResponse::RoleDelete(r) => &mut r.header,
            AuthResponse::RoleGrantPermission(r) => &mut r.header,
            AuthResponse::RoleRevokePermission(r) => &mut r.header,
        }
    }
}
