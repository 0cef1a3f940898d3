//! One unary call through the gateway: the body's JSON decoded into the request message
//! (an empty body is the default message, as grpc-gateway takes it), the headers passed on
//! as gRPC metadata (the `Authorization` token among them) with the connection's extensions
//! (the client certificate), the service's own method called, and its answer written back
//! as JSON.

use std::future::Future;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::status::{bad_body, json_response, unary_error};
use crate::grpc::limits::too_large;

/// Decodes `req`'s body (its message at most `limit` bytes, as over gRPC), calls `call` with
/// it and answers.
pub async fn unary<Req, Resp, F, Fut>(req: Request, limit: usize, call: F) -> Response
where
    Req: DeserializeOwned + Message + Default,
    Resp: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    match answer(req, limit, call).await {
        Ok(r) => match serde_json::to_string(&r) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => unary_error(&Status::internal(e.to_string())),
        },
        Err(resp) => resp,
    }
}

/// What the service answers to the one request message in `req`'s body (at most `limit`
/// bytes), or the error response (a bad body, or the service's status).
pub async fn answer<Req, Resp, F, Fut>(
    req: Request,
    limit: usize,
    call: F,
) -> Result<Resp, Response>
where
    Req: DeserializeOwned + Message + Default,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let (parts, body) = req.into_parts();
    let msg = read_message(body, limit).await?;
    call(grpc_request(parts, msg))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| unary_error(&s))
}

/// The request message in `body`: the default one when the body is empty. The message may
/// be `limit` bytes, as over gRPC (etcd's --max-request-bytes and framing), refused as gRPC
/// refuses it; its JSON, with bytes in base64, may take twice that.
async fn read_message<Req: DeserializeOwned + Message + Default>(
    body: axum::body::Body,
    limit: usize,
) -> Result<Req, Response> {
    let json_limit = 2 * limit;
    let bytes = axum::body::to_bytes(body, json_limit).await.map_err(|_| {
        unary_error(&Status::resource_exhausted(too_large(
            format!("more than {json_limit} bytes of JSON"),
            limit,
        )))
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Req::default());
    }
    let msg: Req = serde_json::from_slice(&bytes).map_err(|e| bad_body(&e))?;
    let size = msg.encoded_len();
    if size > limit {
        return Err(unary_error(&Status::resource_exhausted(too_large(
            size, limit,
        ))));
    }
    Ok(msg)
}

/// The gRPC request the service sees: the message with the HTTP request's headers as
/// metadata and its extensions.
pub fn grpc_request<T>(parts: Parts, msg: T) -> tonic::Request<T> {
    tonic::Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        msg,
    )
}
