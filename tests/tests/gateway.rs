//! etcd's JSON gateway (`/v3/...`) with real curl: the same requests against real etcd 3.4
//! and Cairn, the answers compared after the member-level header fields and the IDs each
//! server draws are replaced (`cairn_tests::gateway::normalized`). Unary routes of every
//! service, errors, auth with a token, the watch and keep-alive streams, the snapshot stream;
//! and the same with Python's `requests` (`tests/gateway/requests_client.py`).

use std::time::Duration;

use cairn_tests::base64;
use cairn_tests::gateway::{Reply, Stream, normalized, post};
use cairn_tests::{Kind, TestServer, etcdctl, require_etcd};
use serde_json::{Value, json};

/// One step's outcome on one server, ready to compare.
#[derive(Debug, PartialEq)]
struct Seen {
    step: String,
    status: u16,
    body: Value,
}

/// Runs the script of unary requests against `base`; the answers normalized.
fn unary_script(base: &str) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut step = |name: &str, path: &str, body: &str, ids: &[&str]| -> Value {
        let r = post(base, path, body, &[]);
        let v = r.json();
        seen.push(Seen {
            step: name.into(),
            status: r.status,
            body: normalized(&v, ids),
        });
        v
    };
    let b = |s: &str| base64::encode(s.as_bytes());
    step(
        "put",
        "/v3/kv/put",
        &json!({"key": b("foo"), "value": b("bar")}).to_string(),
        &[],
    );
    step(
        "put prev_kv",
        "/v3/kv/put",
        &json!({"key": b("foo"), "value": b("baz"), "prev_kv": true}).to_string(),
        &[],
    );
    step(
        "put other",
        "/v3/kv/put",
        &json!({"key": b("fop"), "value": b("1")}).to_string(),
        &[],
    );
    step(
        "range",
        "/v3/kv/range",
        &json!({"key": b("foo")}).to_string(),
        &[],
    );
    step(
        "range prefix",
        "/v3/kv/range",
        &json!({"key": b("fo"), "range_end": b("fp")}).to_string(),
        &[],
    );
    step(
        "range count_only",
        "/v3/kv/range",
        &json!({"key": b("f"), "range_end": b("g"), "count_only": true}).to_string(),
        &[],
    );
    step(
        "range missing",
        "/v3/kv/range",
        &json!({"key": b("nope")}).to_string(),
        &[],
    );
    step(
        "v3beta range",
        "/v3beta/kv/range",
        &json!({"key": b("foo")}).to_string(),
        &[],
    );
    step(
        "txn succeeds",
        "/v3/kv/txn",
        &json!({
            "compare": [{"key": b("foo"), "target": "VALUE", "result": "EQUAL", "value": b("baz")}],
            "success": [{"request_put": {"key": b("t"), "value": b("1")}}, {"request_range": {"key": b("foo")}}],
            "failure": [{"request_delete_range": {"key": b("t")}}]
        })
        .to_string(),
        &[],
    );
    step(
        "txn fails",
        "/v3/kv/txn",
        &json!({
            "compare": [{"key": b("foo"), "target": "VERSION", "result": "GREATER", "version": "5"}],
            "failure": [{"request_range": {"key": b("t")}}]
        })
        .to_string(),
        &[],
    );
    step(
        "delete prev_kv",
        "/v3/kv/deleterange",
        &json!({"key": b("fop"), "prev_kv": true}).to_string(),
        &[],
    );
    let grant = step("lease grant", "/v3/lease/grant", r#"{"TTL":"60"}"#, &["ID"]);
    let lease = grant["ID"].as_str().expect("a lease ID").to_string();
    step(
        "put on lease",
        "/v3/kv/put",
        &json!({"key": b("l"), "value": b("v"), "lease": lease}).to_string(),
        &[],
    );
    step(
        "lease timetolive",
        "/v3/lease/timetolive",
        &json!({"ID": lease, "keys": true}).to_string(),
        &["ID", "TTL"],
    );
    step(
        "kv/lease timetolive",
        "/v3/kv/lease/timetolive",
        &json!({"ID": lease}).to_string(),
        &["ID", "TTL"],
    );
    step("lease leases", "/v3/lease/leases", "{}", &["ID"]);
    step("kv/lease leases", "/v3/kv/lease/leases", "", &["ID"]);
    step(
        "lease revoke",
        "/v3/lease/revoke",
        &json!({"ID": lease}).to_string(),
        &[],
    );
    step(
        "lease revoke again",
        "/v3/kv/lease/revoke",
        &json!({"ID": lease}).to_string(),
        &[],
    );
    step(
        "range after revoke",
        "/v3/kv/range",
        &json!({"key": b("l")}).to_string(),
        &[],
    );
    step(
        "compaction",
        "/v3/kv/compaction",
        r#"{"revision":"3"}"#,
        &[],
    );
    step(
        "range compacted",
        "/v3/kv/range",
        &json!({"key": b("foo"), "revision": "2"}).to_string(),
        &[],
    );
    step(
        "range future",
        "/v3/kv/range",
        &json!({"key": b("foo"), "revision": "100"}).to_string(),
        &[],
    );
    step("put empty key", "/v3/kv/put", "{}", &[]);
    step(
        "alarm list",
        "/v3/maintenance/alarm",
        r#"{"action":"GET"}"#,
        &[],
    );
    step(
        "member list",
        "/v3/cluster/member/list",
        "{}",
        &["ID", "peerURLs", "clientURLs"],
    );
    step(
        "member remove unknown",
        "/v3/cluster/member/remove",
        r#"{"ID":"1"}"#,
        &[],
    );
    step(
        "lock unlock",
        "/v3/lock/unlock",
        &json!({"key": b("nolock")}).to_string(),
        &[],
    );
    step(
        "election leader none",
        "/v3/election/leader",
        &json!({"name": b("noelection")}).to_string(),
        &[],
    );
    // auth, through the gateway alone, then a request with the token in Authorization
    step(
        "authenticate disabled",
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"pw"}"#,
        &[],
    );
    step(
        "user add",
        "/v3/auth/user/add",
        r#"{"name":"root","password":"pw"}"#,
        &[],
    );
    step(
        "user add twice",
        "/v3/auth/user/add",
        r#"{"name":"root","password":"pw"}"#,
        &[],
    );
    step("role add", "/v3/auth/role/add", r#"{"name":"root"}"#, &[]);
    step(
        "user grant",
        "/v3/auth/user/grant",
        r#"{"user":"root","role":"root"}"#,
        &[],
    );
    step("user get", "/v3/auth/user/get", r#"{"name":"root"}"#, &[]);
    step("role get", "/v3/auth/role/get", r#"{"role":"root"}"#, &[]);
    step("user list", "/v3/auth/user/list", "{}", &[]);
    step("role list", "/v3/auth/role/list", "{}", &[]);
    step("auth enable", "/v3/auth/enable", "{}", &[]);
    step(
        "put without token",
        "/v3/kv/put",
        &json!({"key": b("a"), "value": b("1")}).to_string(),
        &[],
    );
    step(
        "wrong password",
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"no"}"#,
        &[],
    );
    let auth = step(
        "authenticate",
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"pw"}"#,
        &["token"],
    );
    let token = auth["token"].as_str().expect("a token").to_string();
    let with_token = |path: &str, body: &str| -> Reply {
        post(
            base,
            path,
            body,
            &["-H".into(), format!("Authorization: {token}")],
        )
    };
    for (name, path, body) in [
        (
            "put with token",
            "/v3/kv/put",
            json!({"key": b("a"), "value": b("1")}).to_string(),
        ),
        (
            "range with token",
            "/v3/kv/range",
            json!({"key": b("a")}).to_string(),
        ),
        ("auth disable", "/v3/auth/disable", "{}".to_string()),
    ] {
        let r = with_token(path, &body);
        seen.push(Seen {
            step: name.into(),
            status: r.status,
            body: normalized(&r.json(), &[]),
        });
    }
    seen
}

#[test]
fn unary_routes_answer_as_etcds_gateway() {
    if !require_etcd() {
        return;
    }
    let etcd = TestServer::start(Kind::Etcd);
    let cairn = TestServer::start(Kind::Cairn);
    let expected = unary_script(&etcd.url());
    let got = unary_script(&cairn.url());
    // the script did what it meant to on the oracle: not a comparison of two failures
    let status = |name: &str| expected.iter().find(|s| s.step == name).unwrap().status;
    assert_eq!(status("range"), 200);
    assert_eq!(status("put with token"), 200);
    assert_eq!(status("put without token"), 400);
    assert_eq!(status("range compacted"), 400);
    assert_eq!(status("lease revoke again"), 404);
    let etcd_range = &expected.iter().find(|s| s.step == "range").unwrap().body;
    assert_eq!(etcd_range["kvs"][0]["value"], base64::encode(b"baz"));
    for (e, c) in expected.iter().zip(&got) {
        assert_eq!(
            c, e,
            "step {:?}: cairn (left) differs from etcd (right)",
            e.step
        );
    }
    assert_eq!(got.len(), expected.len());
}

/// Status has fields etcd 3.4 does not know (3.5's `dbSizeQuota`); the rest must be there,
/// named as etcd names them.
#[test]
fn status_fields_are_etcds() {
    if !require_etcd() {
        return;
    }
    let keys = |kind| {
        let s = TestServer::start(kind);
        post(
            &s.url(),
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"YmFy"}"#,
            &[],
        );
        let r = post(&s.url(), "/v3/maintenance/status", "{}", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| k != "dbSizeQuota" && k != "storageVersion");
        k.sort();
        k
    };
    assert_eq!(keys(Kind::Cairn), keys(Kind::Etcd));
}

/// Bodies that are not the request's JSON: etcd's status and code (the message is the JSON
/// decoder's own, Go's or serde's, so only the code is compared); unknown routes and methods.
#[test]
fn bad_requests_get_etcds_statuses() {
    if !require_etcd() {
        return;
    }
    let answers = |kind| {
        let s = TestServer::start(kind);
        let base = s.url();
        let mut out = Vec::new();
        for (path, body) in [
            ("/v3/kv/range", r#"{"key":"Zm9v""#),
            ("/v3/kv/range", r#"{"key":5}"#),
            ("/v3/kv/range", r#"{"key":"!!!"}"#),
            ("/v3/kv/range", r#"{"key":"Zm9v","limit":"ten"}"#),
            ("/v3/kv/range", r#"{"key":"Zm9v","sort_order":"SIDEWAYS"}"#),
            ("/v3/kv/range", r#"{"key":"Zm9v","unknown_field":1}"#),
            ("/v3/kv/range", r#"[1,2]"#),
        ] {
            let r = post(&base, path, body, &[]);
            let code = r.json()["code"].clone();
            out.push((body.to_string(), r.status, code));
        }
        for (path, method) in [
            ("/v3/kv/nope", "POST"),
            ("/v3/kv/range", "GET"),
            ("/v3/kv/range", "OPTIONS"),
        ] {
            let o = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
                .arg(format!("{base}{path}"))
                .output()
                .unwrap();
            let code = String::from_utf8_lossy(&o.stdout).to_string();
            out.push((
                format!("{method} {path}"),
                code.parse().unwrap(),
                Value::Null,
            ));
        }
        out
    };
    let etcd = answers(Kind::Etcd);
    assert_eq!(etcd[0].1, 400, "{etcd:?}");
    assert_eq!(answers(Kind::Cairn), etcd);
}

/// Oversized requests, refused as over gRPC: a value past --max-request-bytes (1.5 MiB) is
/// etcd's "request is too large", a message past the gRPC limit (2 MiB) grpc's
/// ResourceExhausted; nothing is written.
#[test]
fn oversized_requests_are_refused_as_etcd_refuses_them() {
    if !require_etcd() {
        return;
    }
    let answers = |kind| {
        let s = TestServer::start(kind);
        let mut out = Vec::new();
        for size in [1_600_000, 2_200_000] {
            let body =
                json!({"key": base64::encode(b"big"), "value": base64::encode(vec![b'x'; size])});
            let r = post(&s.url(), "/v3/kv/put", &body.to_string(), &[]);
            out.push((r.status, r.json()));
        }
        let range = post(&s.url(), "/v3/kv/range", r#"{"key":"Ymln"}"#, &[]).json();
        assert_eq!(
            range.get("kvs"),
            None,
            "{kind:?}: an oversized put was written"
        );
        out
    };
    let etcd = answers(Kind::Etcd);
    assert_eq!((etcd[0].0, etcd[1].0), (400, 429), "{etcd:?}");
    assert_eq!(answers(Kind::Cairn), etcd);
}

/// Watch streams their clients drop leave the server serving, and their watchers go.
#[test]
fn dropped_watch_streams_leave_the_server_unaffected() {
    let s = TestServer::start(Kind::Cairn);
    let base = s.url();
    for _ in 0..3 {
        let streams: Vec<Stream> = (0..20)
            .map(|_| {
                Stream::open(
                    &base,
                    "/v3/watch",
                    r#"{"create_request":{"key":"AA==","range_end":"AA=="}}"#,
                    &[],
                )
            })
            .collect();
        for w in &streams {
            assert!(
                w.next(Duration::from_secs(10)).is_some(),
                "a watch was not created"
            );
        }
        drop(streams); // curl killed: the connections close under the streams
        let put = post(&base, "/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#, &[]);
        assert_eq!(put.status, 200, "{}", put.body);
    }
    let (code, health) = cairn_tests::http::get(&s.endpoint(), "/health").expect("health");
    assert_eq!(code, 200, "{health}");
}

/// A watch over the gateway: created, the events of puts and deletes (a txn's two events in
/// one chunk), a progress notification asked for in the same body, and a watch from a
/// compacted revision cancelled with it.
#[test]
fn watch_streams_as_etcds_gateway() {
    if !require_etcd() {
        return;
    }
    let run = |kind| {
        let s = TestServer::start(kind);
        let base = s.url();
        let b = |s: &str| base64::encode(s.as_bytes());
        let watch = Stream::open(
            &base,
            "/v3/watch",
            &format!(
                "{}\n{}",
                json!({"create_request": {"key": b("w"), "range_end": b("x"), "prev_kv": true}}),
                json!({"progress_request": {}})
            ),
            &[],
        );
        let mut chunks = Vec::new();
        let first = |w: &Stream| w.next(Duration::from_secs(10)).expect("a chunk");
        chunks.push(first(&watch)); // created
        chunks.push(first(&watch)); // progress
        post(
            &base,
            "/v3/kv/put",
            &json!({"key": b("w1"), "value": b("a")}).to_string(),
            &[],
        );
        post(
            &base,
            "/v3/kv/txn",
            &json!({"success": [
                {"request_put": {"key": b("w1"), "value": b("b")}},
                {"request_put": {"key": b("w2"), "value": b("c")}}
            ]})
            .to_string(),
            &[],
        );
        post(
            &base,
            "/v3/kv/deleterange",
            &json!({"key": b("w1")}).to_string(),
            &[],
        );
        for _ in 0..3 {
            chunks.push(first(&watch));
        }
        post(&base, "/v3/kv/compaction", r#"{"revision":"3"}"#, &[]);
        let old = Stream::open(
            &base,
            "/v3/watch",
            &json!({"create_request": {"key": b("w1"), "start_revision": "2"}}).to_string(),
            &[],
        );
        chunks.push(first(&old));
        chunks.push(first(&old));
        chunks
            .iter()
            .map(|c| normalized(c, &[]))
            .collect::<Vec<_>>()
    };
    let etcd = run(Kind::Etcd);
    assert_eq!(
        etcd[3]["result"]["events"].as_array().map(Vec::len),
        Some(2),
        "{etcd:#?}"
    );
    let cairn = run(Kind::Cairn);
    for (i, (c, e)) in cairn.iter().zip(&etcd).enumerate() {
        assert_eq!(c, e, "chunk {i}: cairn (left) differs from etcd (right)");
    }
}

/// Keep-alives over the gateway: each request message is answered with its chunk, and the
/// stream ends when the body does (etcd's LeaseKeepAlive returns on the client's EOF).
#[test]
fn keep_alive_streams_as_etcds_gateway() {
    if !require_etcd() {
        return;
    }
    let run = |kind| {
        let s = TestServer::start(kind);
        let base = s.url();
        let lease = post(&base, "/v3/lease/grant", r#"{"TTL":"30"}"#, &[]).json()["ID"]
            .as_str()
            .unwrap()
            .to_string();
        let body = format!(r#"{{"ID":"{lease}"}} {{"ID":"{lease}"}} {{"ID":"1"}}"#);
        let mut ka = Stream::open(&base, "/v3/lease/keepalive", &body, &[]);
        let chunks: Vec<Value> = (0..3)
            .map(|_| normalized(&ka.next(Duration::from_secs(10)).expect("a chunk"), &[]))
            .collect();
        assert!(
            ka.ended(Duration::from_secs(10)),
            "{kind:?}: the stream stayed open"
        );
        chunks
            .into_iter()
            .map(|mut c| {
                if c["result"]["ID"] == json!(lease) {
                    c["result"]["ID"] = json!("<lease>");
                }
                c
            })
            .collect::<Vec<_>>()
    };
    let etcd = run(Kind::Etcd);
    assert_eq!(etcd[0]["result"]["TTL"], "30", "{etcd:#?}");
    assert_eq!(run(Kind::Cairn), etcd);
}

/// The snapshot stream: chunks of base64 blobs that, put together, are a snapshot etcdctl
/// reads (`snapshot status`), with the revision of the writes made.
#[test]
fn snapshot_streams_a_file_etcdctl_reads() {
    if !require_etcd() {
        return;
    }
    for kind in [Kind::Etcd, Kind::Cairn] {
        let s = TestServer::start(kind);
        let base = s.url();
        for i in 0..20 {
            let body = json!({"key": base64::encode(format!("k{i}").as_bytes()), "value": "dg=="});
            post(&base, "/v3/kv/put", &body.to_string(), &[]);
        }
        let out = std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "-d", "{}"])
            .arg(format!("{base}/v3/maintenance/snapshot"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut file = Vec::new();
        let mut last_remaining = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).expect("a JSON chunk");
            let r = &v["result"];
            if let Some(blob) = r["blob"].as_str() {
                file.extend(base64::decode(blob));
            }
            last_remaining = Some(r["remaining_bytes"].clone());
        }
        assert_eq!(
            last_remaining,
            Some(Value::Null),
            "{kind:?}: the last chunk leaves bytes"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.db");
        std::fs::write(&path, &file).unwrap();
        let out = etcdctl(
            &s.endpoint(),
            &["snapshot", "status", path.to_str().unwrap(), "-w", "json"],
        );
        let status = cairn_tests::output_text(&out);
        let v: Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout))
            .unwrap_or_else(|e| panic!("{kind:?}: {e}: {status}"));
        assert_eq!(v["revision"], 21, "{kind:?}: {status}");
    }
}

/// Python's `requests` against both: unary calls, a watch read line by line, auth with a
/// token (`tests/gateway/requests_client.py` prints each step normalized). `python3` is the
/// one on PATH: CI's virtualenv, which has `requests` (a dependency of moto).
#[test]
fn python_requests_sees_what_it_sees_on_etcd() {
    if !require_etcd() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/gateway/requests_client.py");
    let run = |kind| {
        let s = TestServer::start(kind);
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg(s.url())
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "{kind:?}: {script}: {}",
            cairn_tests::output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let etcd = run(Kind::Etcd);
    assert!(etcd.contains(r#""step": "watch chunk 2""#), "{etcd}");
    let cairn = run(Kind::Cairn);
    for (c, e) in cairn.lines().zip(etcd.lines()) {
        assert_eq!(c, e, "cairn (left) differs from etcd (right)");
    }
    assert_eq!(cairn.lines().count(), etcd.lines().count(), "{cairn}");
}
