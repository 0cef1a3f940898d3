//! The everyday path: a first copy, then the stream; `--check`; one mirror per prefix.

use std::time::Duration;

use cairn_tests::mirror::{Mirror, check, contents};
use cairn_tests::{Kind, TestServer};

use crate::{FENCE, assert_mirrored, count, del, put, txn_puts};

#[test]
fn copies_then_streams_with_prefix_rewrite() {
    let src = TestServer::start(Kind::Cairn);
    let dst = TestServer::start(Kind::Cairn);
    let (s, d) = (src.endpoint(), dst.endpoint());
    let seed: Vec<(String, String)> = (0..60)
        .map(|i| (format!("/app/k{i:03}"), format!("v{i}")))
        .collect();
    txn_puts(&s, &seed);
    put(&s, "/other/x", "not mirrored");
    put(&d, "/dst/stale", "left from before");
    let mut m = Mirror::start(
        &s,
        &d,
        &["--prefix", "/app/", "--dest-prefix", "/dst/", FENCE],
    );
    let done = m.wait_event("sync_done", Duration::from_secs(20));
    assert_eq!(done["keys"], 60, "{done}");
    assert_eq!(
        done["kept_extra"], 1,
        "first copy without --prune keeps extra keys: {done}"
    );
    m.wait_event("watching", Duration::from_secs(20));

    put(&s, "/app/k001", "changed");
    del(&s, "/app/k002");
    put(&s, "/app/new", "added");
    txn_puts(
        &s,
        &[
            ("/app/t1".into(), "a".into()),
            ("/app/t2".into(), "b".into()),
        ],
    );

    // --check sees the stale key and fails, naming it.
    crate::wait_until_mirrored_except(&s, &d, "/dst/stale");
    let out = check(&s, &d, &["--prefix", "/app/", "--dest-prefix", "/dst/"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "--check passed with an extra key:\n{stdout}"
    );
    assert!(
        stdout.contains("extra 1") && stdout.contains("/dst/stale"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("destination differs from source"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    del(&d, "/dst/stale");
    assert_mirrored(&s, "/app/", &d, "/dst/", &[]);
    assert!(contents(&d, "/other/", "/other/").is_empty());
    assert!(m.stop().success(), "stderr: {}", m.stderr());
    assert_eq!(count(&m.notable(), "stopped"), 1, "{:?}", m.notable());
}

#[test]
fn a_second_mirror_of_the_same_prefix_is_refused() {
    let src = TestServer::start(Kind::Cairn);
    let dst = TestServer::start(Kind::Cairn);
    let (s, d) = (src.endpoint(), dst.endpoint());
    put(&s, "/f/a", "1");
    let args = ["--prefix", "/f/", FENCE];
    let mut first = Mirror::start(&s, &d, &args);
    first.wait_event("watching", Duration::from_secs(20));

    let mut second = Mirror::start(&s, &d, &args);
    let (status, stderr) = second.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "the second mirror ran");
    assert!(stderr.contains("another make-mirror"), "{stderr}");
    assert!(stderr.contains("it keeps renewing its lease"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A clean stop gives the prefix back: the next mirror starts at once and resumes.
    assert!(first.stop().success());
    put(&s, "/f/b", "2");
    let mut third = Mirror::start(&s, &d, &args);
    let r = third.wait_event("resuming", Duration::from_secs(10));
    assert_eq!(r["phase"], "watching", "{r}");
    assert_mirrored(&s, "/f/", &d, "/f/", &[]);
    assert_eq!(
        count(&third.notable(), "sync_started"),
        0,
        "{:?}",
        third.notable()
    );
}

#[test]
fn bad_flags_are_one_clear_error() {
    let out = check("127.0.0.1:1", "127.0.0.1:2", &["--max-txn-ops", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--max-txn-ops 1 is too small"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// GET http://127.0.0.1:<port>/metrics (None while nothing listens yet).
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn status_events_and_metrics_report_the_lag() {
    let src = TestServer::start(Kind::Cairn);
    let dst = TestServer::start(Kind::Cairn);
    let (s, d) = (src.endpoint(), dst.endpoint());
    put(&s, "/v/a", "1");
    let port = cairn_tests::ports::free_port();
    let url = format!("--listen-metrics-urls=http://127.0.0.1:{port}");
    // A dead endpoint first on both sides: the mirror moves on to the next.
    let (sources, dests) = (format!("127.0.0.1:1,{s}"), format!("127.0.0.1:1,{d}"));
    let mut m = Mirror::start(&sources, &dests, &["--prefix", "/v/", FENCE, &url]);
    m.wait_event("watching", Duration::from_secs(20));
    put(&s, "/v/b", "2");
    let rev = crate::txn_puts(&s, &[("/v/c".into(), "3".into())]);
    assert_mirrored(&s, "/v/", &d, "/v/", &[]);
    let text = cairn_tests::wait::until(
        Duration::from_secs(10),
        "metrics at the source revision",
        || {
            let t = scrape(port)?;
            (metric(&t, "cairn_mirror_mirrored_revision")? >= rev as f64).then_some(t)
        },
    );
    assert_eq!(
        metric(&text, "cairn_mirror_lag_revisions"),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "cairn_mirror_events_total").unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert!(
        text.contains("cairn_mirror_phase{phase=\"watching\"} 1"),
        "{text}"
    );
    // The -w json status lines carry the same numbers.
    let status = m.wait_event("status", Duration::from_secs(5));
    for field in [
        "source_revision",
        "mirrored_revision",
        "lag_revisions",
        "lag_seconds",
        "events_per_second",
    ] {
        assert!(status.get(field).is_some(), "{field} missing in {status}");
    }
}
