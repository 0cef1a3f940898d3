//! Streaming calls through the gateway, as grpc-gateway v1 serves them: the request body is
//! a sequence of JSON messages (read as they arrive; the first that does not decode ends the
//! input, as the gateway stops sending), and each response goes out as its own chunk,
//! `{"result":...}` and a newline; an error is the last chunk, `{"error":{...}}`.
//!
//! A bidirectional call's service method takes a `tonic::Streaming`, which only a gRPC body
//! makes: the JSON messages are framed as gRPC messages into one, so the service's own code
//! serves the stream.

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use http_body::Frame;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Status, Streaming};

use super::status::{stream_error, unary_error};
use super::unary::{answer, grpc_request};

/// A server-streaming call: one request message in the body, the responses as chunks.
pub async fn server_stream<Req, Resp, S, F, Fut>(req: Request, limit: usize, call: F) -> Response
where
    Req: DeserializeOwned + Message + Default,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    match answer(req, limit, call).await {
        Ok(stream) => chunks(stream),
        Err(resp) => resp,
    }
}

/// A bidirectional call: the body's JSON messages as the request stream, the responses as
/// chunks for as long as the service sends them.
pub async fn bidi<Req, Resp, S, F, Fut>(req: Request, limit: usize, call: F) -> Response
where
    Req: DeserializeOwned + Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(tonic::Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let (parts, body) = req.into_parts();
    let frames = json_messages::<Req>(body, limit).map(|m| {
        let mut framed = Vec::with_capacity(5 + m.encoded_len());
        framed.push(0); // not compressed
        framed.extend_from_slice(&(m.encoded_len() as u32).to_be_bytes());
        m.encode(&mut framed).expect("a Vec grows as needed");
        Ok::<_, Infallible>(Frame::data(Bytes::from(framed)))
    });
    let input = Streaming::new_request(
        tonic_prost::ProstDecoder::<Req>::default(),
        http_body_util::StreamBody::new(frames),
        None,
        None,
    );
    match call(grpc_request(parts, input)).await {
        Ok(r) => chunks(r.into_inner()),
        Err(s) => unary_error(&s),
    }
}

/// The responses of `stream` as chunks of JSON, each with its newline; an error ends them.
fn chunks<Resp, S>(stream: S) -> Response
where
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let body = stream
        .scan(false, |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let line = match item {
                Ok(resp) => serde_json::to_string(&Chunk { result: &resp })
                    .unwrap_or_else(|e| stream_error(&Status::internal(e.to_string()))),
                Err(s) => {
                    *ended = true;
                    stream_error(&s)
                }
            };
            futures::future::ready(Some(Ok::<_, Infallible>(Bytes::from(line + "\n"))))
        })
        .boxed();
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

#[derive(Serialize)]
struct Chunk<'a, T> {
    result: &'a T,
}

/// The JSON messages of `body`, one by one as they arrive; ends at the body's end, at the
/// first one that is not a `T`, or past `2 * limit` bytes of JSON for a single message (its
/// bytes in base64: `limit` bytes of message, as over gRPC).
fn json_messages<T: DeserializeOwned + Send + 'static>(
    body: Body,
    limit: usize,
) -> impl Stream<Item = T> + Send + 'static {
    let state = (body.into_data_stream(), Vec::<u8>::new());
    futures::stream::unfold(state, move |(mut data, mut buf)| async move {
        loop {
            match next_message::<T>(&mut buf) {
                Parsed::Message(m) => return Some((m, (data, buf))),
                Parsed::Bad => return None,
                Parsed::NeedMore if buf.len() > 2 * limit => return None,
                Parsed::NeedMore => match data.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    _ => return None,
                },
            }
        }
    })
}

enum Parsed<T> {
    Message(T),
    NeedMore,
    Bad,
}

/// Takes the first whole JSON value off `buf`, if there is one.
fn next_message<T: DeserializeOwned>(buf: &mut Vec<u8>) -> Parsed<T> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match values.next() {
        Some(Ok(v)) => {
            let used = values.byte_offset();
            buf.drain(..used);
            match serde_json::from_value(v) {
                Ok(m) => Parsed::Message(m),
                Err(_) => Parsed::Bad,
            }
        }
        Some(Err(e)) if e.is_eof() => Parsed::NeedMore,
        Some(Err(_)) => Parsed::Bad,
        None => Parsed::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::LeaseKeepAliveRequest;

    #[test]
    fn messages_are_taken_as_they_complete() {
        let mut buf = br#"{"ID":"1"} {"ID":"2"}{"I"#.to_vec();
        let ids: Vec<i64> = std::iter::from_fn(|| match next_message(&mut buf) {
            Parsed::Message(LeaseKeepAliveRequest { id }) => Some(id),
            _ => None,
        })
        .collect();
        assert_eq!(ids, [1, 2]);
        assert!(matches!(
            next_message::<LeaseKeepAliveRequest>(&mut buf),
            Parsed::NeedMore
        ));
        buf.extend_from_slice(br#"D":"3"} {bad"#);
        assert!(matches!(
            next_message(&mut buf),
            Parsed::Message(LeaseKeepAliveRequest { id: 3 })
        ));
        assert!(matches!(
            next_message::<LeaseKeepAliveRequest>(&mut buf),
            Parsed::Bad
        ));
    }
}
