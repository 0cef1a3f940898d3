//! `cairnutl get|put|del|watch`: quick checks, with etcdctl's flags and output.
//!
//! Simple output is etcdctl's (key line, value line); `-w json` is etcdctl's JSON (base64 keys
//! and values, zero fields left out as Go's `omitempty` does). The JSON and RPC helpers at the
//! bottom are shared by the other online commands.

use cairn_client::Svc;
use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, ResponseHeader, WatchCreateRequest, WatchRequest,
    watch_request,
};
use cairn_proto::mvccpb::{self, KeyValue};
use serde_json::{Map, Value, json};

use cairn_storage::index::prefix_end;

use super::online::{
    base64, block_on, header_json, header_obj, print_out, put_bool, put_int, put_list, rpc_error,
};
use crate::printer::Format;

#[derive(clap::Args)]
pub struct GetArgs {
    // not the id `key`: that is the global `--key` (TLS key file)
    #[arg(id = "key_arg", value_name = "KEY")]
    key: String,
    range_end: Option<String>,
    /// Get keys with matching prefix.
    #[arg(long)]
    prefix: bool,
    /// Get keys that are greater than or equal to the given key.
    #[arg(long)]
    from_key: bool,
    /// Maximum number of results (0 = no limit).
    #[arg(long, default_value_t = 0)]
    limit: i64,
    /// Revision to read at (0 = latest).
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Get only the keys.
    #[arg(long)]
    keys_only: bool,
    /// Print only the values (simple output).
    #[arg(long)]
    print_value_only: bool,
}

#[derive(clap::Args)]
pub struct PutArgs {
    // not the id `key`: that is the global `--key` (TLS key file)
    #[arg(id = "key_arg", value_name = "KEY")]
    key: String,
    /// The value; read from stdin when left out, as etcdctl does.
    value: Option<String>,
    /// Lease ID (in hexadecimal) to attach the key to.
    #[arg(long, default_value = "0")]
    lease: String,
    /// Return the previous key-value pair.
    #[arg(long)]
    prev_kv: bool,
}

#[derive(clap::Args)]
pub struct DelArgs {
    // not the id `key`: that is the global `--key` (TLS key file)
    #[arg(id = "key_arg", value_name = "KEY")]
    key: String,
    range_end: Option<String>,
    /// Delete keys with matching prefix.
    #[arg(long)]
    prefix: bool,
    /// Delete keys that are greater than or equal to the given key.
    #[arg(long)]
    from_key: bool,
    /// Return the deleted key-value pairs.
    #[arg(long)]
    prev_kv: bool,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    // not the id `key`: that is the global `--key` (TLS key file)
    #[arg(id = "key_arg", value_name = "KEY")]
    key: String,
    range_end: Option<String>,
    /// Watch keys with matching prefix.
    #[arg(long)]
    prefix: bool,
    /// Revision to start watching from (0 = now).
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Get the previous key-value pair with each event.
    #[arg(long)]
    prev_kv: bool,
    /// Cairn's addition (etcdctl has no such flag): exit after N events, for scripts and tests.
    #[arg(long)]
    count: Option<u64>,
}

pub fn get(a: GetArgs, g: &super::Global) -> anyhow::Result<()> {
    let (key, range_end) = key_range(&a.key, a.range_end.as_deref(), a.prefix, a.from_key)?;
    let req = RangeRequest {
        key,
        range_end,
        limit: a.limit,
        revision: a.rev,
        keys_only: a.keys_only,
        ..Default::default()
    };
    let r = call(g, async |c| c.range(req).await)?;
    print_answer(
        g.format,
        "get",
        r.header.as_ref(),
        |o| {
            put_list(o, "kvs", r.kvs.iter().map(kv_json).collect());
            put_bool(o, "more", r.more);
            put_int(o, "count", r.count);
        },
        |out| {
            for kv in &r.kvs {
                push_kv(out, kv, a.print_value_only);
            }
        },
    )
}

pub fn put(a: PutArgs, g: &super::Global) -> anyhow::Result<()> {
    let lease = i64::from_str_radix(&a.lease, 16)
        .map_err(|e| anyhow::anyhow!("bad lease ID ({e}), expecting ID in Hex"))?;
    let value = match a.value {
        Some(v) => v,
        None => std::io::read_to_string(std::io::stdin())?,
    };
    let req = PutRequest {
        key: a.key.into_bytes(),
        value: value.into_bytes(),
        lease,
        prev_kv: a.prev_kv,
        ..Default::default()
    };
    let r = call(g, async |c| c.put(req).await)?;
    print_answer(
        g.format,
        "put",
        r.header.as_ref(),
        |o| {
            if let Some(kv) = &r.prev_kv {
                o.insert("prev_kv".into(), kv_json(kv));
            }
        },
        |out| {
            out.push_str("OK\n");
            if let Some(kv) = &r.prev_kv {
                push_kv(out, kv, false);
            }
        },
    )
}

pub fn del(a: DelArgs, g: &super::Global) -> anyhow::Result<()> {
    let (key, range_end) = key_range(&a.key, a.range_end.as_deref(), a.prefix, a.from_key)?;
    let req = DeleteRangeRequest {
        key,
        range_end,
        prev_kv: a.prev_kv,
    };
    let r = call(g, async |c| c.delete_range(req).await)?;
    print_answer(
        g.format,
        "del",
        r.header.as_ref(),
        |o| {
            put_int(o, "deleted", r.deleted);
            put_list(o, "prev_kvs", r.prev_kvs.iter().map(kv_json).collect());
        },
        |out| {
            out.push_str(&format!("{}\n", r.deleted));
            r.prev_kvs.iter().for_each(|kv| push_kv(out, kv, false));
        },
    )
}

pub fn watch(a: WatchArgs, g: &super::Global) -> anyhow::Result<()> {
    let format = simple_or_json(g.format, "watch")?;
    let (key, range_end) = key_range(&a.key, a.range_end.as_deref(), a.prefix, false)?;
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key,
                range_end,
                start_revision: a.rev,
                prev_kv: a.prev_kv,
                ..Default::default()
            },
        )),
    };
    block_on(async move {
        // No per-call timeout here: a watch runs until stopped.
        let client = g.dialer()?.connect_any_streaming().await?;
        use tonic::codegen::tokio_stream::{self, StreamExt};
        // Keep the request stream open: a half-closed stream would end the watch.
        let requests = tokio_stream::iter([create]).chain(tokio_stream::pending());
        let mut events = client
            .watch()
            .watch(requests)
            .await
            .map_err(rpc_error)?
            .into_inner();
        let mut left = a.count;
        let stdin_closed = stdin_closed();
        tokio::pin!(stdin_closed);
        loop {
            let resp = tokio::select! {
                r = events.message() => r.map_err(rpc_error)?,
                () = &mut stdin_closed => return Ok(()),
            };
            let Some(mut resp) = resp else {
                anyhow::bail!("watch stream closed by the server");
            };
            if resp.canceled || resp.compact_revision != 0 {
                let why = if resp.cancel_reason.is_empty() {
                    format!("required revision {} has been compacted", a.rev)
                } else {
                    resp.cancel_reason.clone()
                };
                anyhow::bail!("watch was canceled by the server ({why})");
            }
            if resp.events.is_empty() {
                continue;
            }
            if let Some(n) = left {
                resp.events.truncate(n as usize);
                left = Some(n - resp.events.len() as u64);
            }
            let mut out = String::new();
            if format == Format::Json {
                let ev: Vec<Value> = resp.events.iter().map(event_json).collect();
                // etcdctl marshals clientv3's WatchResponse, whose fields have no JSON tags.
                let o = json!({
                    "Header": header_json(resp.header.as_ref().unwrap_or(&ResponseHeader::default())),
                    "Events": ev,
                    "CompactRevision": resp.compact_revision,
                    "Canceled": resp.canceled,
                    "Created": resp.created,
                });
                out = format!("{o}\n");
            } else {
                for e in &resp.events {
                    let delete = e.r#type == mvccpb::event::EventType::Delete as i32;
                    out.push_str(if delete { "DELETE\n" } else { "PUT\n" });
                    if let Some(kv) = &e.prev_kv {
                        push_kv(&mut out, kv, false);
                    }
                    if let Some(kv) = &e.kv {
                        push_kv(&mut out, kv, false);
                    }
                }
            }
            print_out(&out)?;
            if left == Some(0) {
                return Ok(());
            }
        }
    })
}

/// One unary KV call on the first endpoint that connects.
fn call<R>(
    g: &super::Global,
    rpc: impl AsyncFnOnce(&mut KvClient<Svc>) -> Result<tonic::Response<R>, tonic::Status>,
) -> anyhow::Result<R> {
    let r = block_on(async {
        let mut c = g.connect_any().await?.kv();
        rpc(&mut c).await.map_err(rpc_error)
    })?;
    Ok(r.into_inner())
}

/// Prints an answer as etcdctl does for `what`: `-w json` is the header plus the fields `json`
/// adds, simple output the lines `simple` writes. The format is checked only now, after the
/// call, as etcdctl does.
fn print_answer(
    format: Format,
    what: &str,
    header: Option<&ResponseHeader>,
    json: impl FnOnce(&mut Map<String, Value>),
    simple: impl FnOnce(&mut String),
) -> anyhow::Result<()> {
    let mut out = String::new();
    match simple_or_json(format, what)? {
        Format::Json => {
            let mut o = header_obj(header);
            json(&mut o);
            out = format!("{}\n", Value::Object(o));
        }
        _ => simple(&mut out),
    }
    print_out(&out)
}

/// Resolves when stdin is a pipe or socket and its writer closes it; never otherwise (a
/// terminal or `/dev/null` must not end the watch; Ctrl-C does).
async fn stdin_closed() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket());
    if !pipe {
        return std::future::pending().await;
    }
    let _ =
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await;
}

/// Key and range end as etcdctl computes them for `KEY [RANGE_END]`, `--prefix`, `--from-key`.
fn key_range(
    key: &str,
    range_end: Option<&str>,
    prefix: bool,
    from_key: bool,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    if prefix && from_key {
        anyhow::bail!("`--prefix` and `--from-key` cannot be set at the same time, choose one");
    }
    if range_end.is_some() && (prefix || from_key) {
        anyhow::bail!(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
        );
    }
    let mut key = key.as_bytes().to_vec();
    if prefix || from_key {
        if key.is_empty() {
            key = vec![0];
            return Ok((key, vec![0]));
        }
        if from_key {
            return Ok((key, vec![0]));
        }
        return Ok((key.clone(), prefix_end(&key)));
    }
    Ok((
        key,
        range_end.map(|e| e.as_bytes().to_vec()).unwrap_or_default(),
    ))
}

fn simple_or_json(format: Format, what: &str) -> anyhow::Result<Format> {
    match format {
        Format::Simple | Format::Json => Ok(format),
        Format::Table => {
            anyhow::bail!("table is not supported as output format for {what}; use simple or json")
        }
        Format::Fields => {
            anyhow::bail!("fields is not supported as output format for {what}; use simple or json")
        }
    }
}

fn push_kv(out: &mut String, kv: &KeyValue, value_only: bool) {
    if !value_only {
        out.push_str(&String::from_utf8_lossy(&kv.key));
        out.push('\n');
    }
    out.push_str(&String::from_utf8_lossy(&kv.value));
    out.push('\n');
}

fn kv_json(kv: &KeyValue) -> Value {
    let mut o = Map::new();
    if !kv.key.is_empty() {
        o.insert("key".into(), base64(&kv.key).into());
    }
    put_int(&mut o, "create_revision", kv.create_revision);
    put_int(&mut o, "mod_revision", kv.mod_revision);
    put_int(&mut o, "version", kv.version);
    if !kv.value.is_empty() {
        o.insert("value".into(), base64(&kv.value).into());
    }
    put_int(&mut o, "lease", kv.lease);
    Value::Object(o)
}

fn event_json(e: &mvccpb::Event) -> Value {
    let mut o = Map::new();
    put_int(&mut o, "type", e.r#type.into());
    if let Some(kv) = &e.kv {
        o.insert("kv".into(), kv_json(kv));
    }
    if let Some(kv) = &e.prev_kv {
        o.insert("prev_kv".into(), kv_json(kv));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_etcdctl_computes_them() {
        assert_eq!(
            key_range("a", None, true, false).unwrap(),
            (b"a".to_vec(), b"b".to_vec())
        );
        assert_eq!(
            key_range("a\u{7f}", None, true, false).unwrap().1,
            b"a\x80".to_vec()
        );
        assert_eq!(
            key_range("", None, true, false).unwrap(),
            (vec![0], vec![0])
        );
        assert_eq!(
            key_range("k", None, false, true).unwrap(),
            (b"k".to_vec(), vec![0])
        );
        assert_eq!(
            key_range("a", Some("c"), false, false).unwrap().1,
            b"c".to_vec()
        );
        assert!(key_range("a", Some("c"), true, false).is_err());
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
