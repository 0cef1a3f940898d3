//! What the online commands share: a runtime, `--cluster`'s member URLs, etcdctl's error
//! text and exit codes, JSON in the shape etcdctl prints (Go's omitempty) and its `-w fields`
//! header.

use std::future::Future;
use std::io::Write as _;

use cairn_client::{Client, ClientError, Dialer, Svc};
use cairn_proto::etcdserverpb::auth_client::AuthClient;
use cairn_proto::etcdserverpb::{MemberListRequest, ResponseHeader};
use serde_json::{Map, Value};

use crate::printer::Answer;

/// Prints to stdout; a closed pipe (`| head`) is not an error.
pub fn print_out(s: &str) -> anyhow::Result<()> {
    print_bytes(s.as_bytes())
}

/// [`print_out`] for output that need not be UTF-8 (keys in `role get`).
pub fn print_bytes(s: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(s).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

/// Runs one command's async body on a small runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime")
        .block_on(f)
}

/// `--cluster`: a dialer of every member's client URL (asked of the first endpoint that
/// answers, as etcdctl does), with the TLS settings and credentials of `--endpoints`.
pub async fn cluster_dialer(g: &super::Global) -> anyhow::Result<Dialer> {
    let dialer = g.dialer()?;
    let mut last = anyhow::anyhow!("no endpoints given; pass --endpoints");
    for ep in dialer.endpoints() {
        match member_urls(dialer, ep).await {
            Ok(urls) => return Ok(dialer.with_endpoints(urls)?),
            Err(e) => last = e.context(format!("member list from {ep}")),
        }
    }
    Err(last)
}

/// Client URLs of every member, as `ep` lists them.
async fn member_urls(dialer: &Dialer, ep: &str) -> anyhow::Result<Vec<String>> {
    let c = dialer.connect(ep).await?;
    let req = MemberListRequest {
        linearizable: false,
    };
    let r = c
        .cluster()
        .member_list(req)
        .await
        .map_err(rpc_error)?
        .into_inner();
    let urls: Vec<String> = r.members.into_iter().flat_map(|m| m.client_ur_ls).collect();
    if urls.is_empty() {
        anyhow::bail!("no member of the cluster at {ep} advertises a client URL");
    }
    Ok(urls)
}

/// A server's error as etcdctl prints it: the status message alone (e.g.
/// `etcdserver: mvcc: required revision has been compacted`); a call that failed on the way
/// (a TLS refusal) by its cause.
pub fn rpc_error(s: tonic::Status) -> anyhow::Error {
    match s.code() {
        tonic::Code::DeadlineExceeded
            if s.message().is_empty() || s.message().contains("Timeout") =>
        {
            anyhow::anyhow!("context deadline exceeded (raise --command-timeout)")
        }
        _ => anyhow::anyhow!("{}", cairn_client::error::describe(&s)),
    }
}

/// A client of the first endpoint that connects, failing as etcdctl's `mustClient` does: a
/// bad flag exits 128, a connection that cannot be made or credentials the server refuses
/// exit 2 (the refusal by etcd's message alone: `etcdserver: authentication failed, ...`).
pub async fn must_connect(g: &super::Global) -> anyhow::Result<Client> {
    use super::exit::{BAD_ARGS, BAD_CONNECTION, with_code};
    let dialer = g.dialer().map_err(|e| with_code(BAD_ARGS, e))?;
    dialer.connect_any().await.map_err(|e| match e {
        ClientError::Rpc { status, .. } => with_code(BAD_CONNECTION, rpc_error(status)),
        e => with_code(BAD_CONNECTION, e),
    })
}

/// One Auth call as etcdctl's auth commands make it: [`must_connect`], then the call (a
/// failure exits 1 with etcd's message).
pub fn auth_call<R>(
    g: &super::Global,
    rpc: impl AsyncFnOnce(&mut AuthClient<Svc>) -> Result<tonic::Response<R>, tonic::Status>,
) -> anyhow::Result<R> {
    block_on(async {
        let mut c = must_connect(g).await?.auth();
        Ok(rpc(&mut c).await.map_err(rpc_error)?.into_inner())
    })
}

/// An answer that is only a header: `simple` in simple output, the header in `-w json` and
/// `-w fields` (`user add`, `role delete`, ...).
pub fn header_answer(simple: String, h: Option<&ResponseHeader>) -> Answer {
    Answer {
        simple: simple.into_bytes(),
        json: Value::Object(header_obj(h)),
        fields: Some(fields_header(h).into_bytes()),
    }
}

/// `{"header": {...}}` with Go's omitempty, or an empty object when there is no header.
pub fn header_obj(h: Option<&ResponseHeader>) -> Map<String, Value> {
    let mut o = Map::new();
    if let Some(h) = h {
        o.insert("header".into(), header_json(h));
    }
    o
}

/// A response header with Go's omitempty.
pub fn header_json(h: &ResponseHeader) -> Value {
    let mut o = Map::new();
    put_uint(&mut o, "cluster_id", h.cluster_id);
    put_uint(&mut o, "member_id", h.member_id);
    put_int(&mut o, "revision", h.revision);
    put_uint(&mut o, "raft_term", h.raft_term);
    Value::Object(o)
}

/// etcdctl's `-w fields` header (zeros included; no header prints zeros).
pub fn fields_header(h: Option<&ResponseHeader>) -> String {
    let h = h.cloned().unwrap_or_default();
    format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    )
}

/// Standard padded base64, as Go's `encoding/json` writes `[]byte`.
pub fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

pub fn put_int(o: &mut Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        o.insert(k.into(), v.into());
    }
}

pub fn put_uint(o: &mut Map<String, Value>, k: &str, v: u64) {
    if v != 0 {
        o.insert(k.into(), v.into());
    }
}

pub fn put_bool(o: &mut Map<String, Value>, k: &str, v: bool) {
    if v {
        o.insert(k.into(), v.into());
    }
}

pub fn put_list(o: &mut Map<String, Value>, k: &str, v: Vec<Value>) {
    if !v.is_empty() {
        o.insert(k.into(), v.into());
    }
}
