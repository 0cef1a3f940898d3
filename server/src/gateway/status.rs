//! gRPC statuses as etcd's gateway (grpc-gateway v1) answers them over HTTP: the status code
//! of `HTTPStatusFromCode`, and its bodies, `{"error","message","code"}` for a unary call and
//! `{"error":{"grpc_code","http_code","message","http_status"}}` as a stream's last chunk.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

/// grpc-gateway v1's `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A unary call's error: etcd's status and body.
pub fn unary_error(status: &Status) -> Response {
    let body = serde_json::json!({
        "error": status.message(),
        "message": status.message(),
        "code": status.code() as i32,
    });
    json_response(http_status(status.code()), body.to_string())
}

/// A request body that is not the message's JSON: InvalidArgument, as etcd's gateway.
pub fn bad_body(e: &serde_json::Error) -> Response {
    unary_error(&Status::invalid_argument(e.to_string()))
}

/// A stream's error chunk (the stream ends after it).
pub fn stream_error(status: &Status) -> String {
    let http = http_status(status.code());
    serde_json::json!({
        "error": {
            "grpc_code": status.code() as i32,
            "http_code": http.as_u16(),
            "message": status.message(),
            "http_status": http.canonical_reason().unwrap_or(""),
        }
    })
    .to_string()
}

pub fn json_response(code: StatusCode, body: String) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_etcds_gateway_writes_them() {
        let s = Status::failed_precondition("etcdserver: authentication is not enabled");
        assert_eq!(http_status(s.code()), StatusCode::PRECONDITION_FAILED);
        assert_eq!(
            stream_error(&s),
            r#"{"error":{"grpc_code":9,"http_code":412,"message":"etcdserver: authentication is not enabled","http_status":"Precondition Failed"}}"#
        );
    }
}
